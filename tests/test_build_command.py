"""tinyeff build: every Arm board of boards/ builds here, QEMU boards with make, real boards as
PlatformIO would (its file set and flags, the Debian toolchain, everything but the Arduino core).

CI has no TFLM tree, so what it builds honestly is the compiled runtime on every Arm board, the
errors a user can meet, and the Arduino port itself: compiled for each real board's core with the
flags of its Arduino core, and run in QEMU on a stand-in core (tests/c/arduino_qemu) together with
the project objects `tinyeff build` made, bit-exact, with its fault report and stack mark.
TINYEFF_TFLM_DIR=<a tree made by create_tflm_tree.py with OPTIMIZED_KERNEL_DIR=cmsis_nn> adds
the TFLM projects (minutes each: about 315 TFLM sources).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyeff.boards import all_boards, get_board
from tinyeff.build import build_project
from tinyeff.build.frameworks import ARDUINO_CORES
from tinyeff.cli import main
from tinyeff.generate import generate

ROOT = Path(__file__).resolve().parents[1]
STAND_IN = ROOT / "tests" / "c" / "arduino_qemu"
ARM = sorted(b.id for b in all_boards().values() if b.core.startswith("cortex-m"))
REAL_ARM = [b for b in ARM if get_board(b).baremetal is None]
PORT_FUNCTIONS = set(re.findall(r"\b(te_port_\w+)\s*\(", (ROOT / "firmware" / "protocol" / "te_port.h").read_text()))
FRAMEWORK_FILES = ("src/main.cpp", "src/tinyeff/ports/arduino/te_port_arduino.cpp")


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        if os.environ.get("CI"):  # CI installs it: a missing tool there is a broken setup, not a skip
            pytest.fail(f"{tool} is not installed")
        pytest.skip(f"{tool} is not installed (make setup installs it)")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("build")


@pytest.fixture(scope="module", params=ARM)
def compiled_build(request, kws_model, work):
    """The compiled-runtime KWS project for each Arm board, built once."""
    _need("arm-none-eabi-gcc")
    if get_board(request.param).baremetal is not None:
        _need("make")
    project = generate(kws_model, request.param, "compiled", work / f"compiled-{request.param}")
    return project, build_project(project)


def test_every_arm_board_builds_the_compiled_runtime(compiled_build):
    project, result = compiled_build
    board = get_board(result.board)
    assert result.elf.is_file() and result.sizes.text > 10_000
    if board.baremetal is not None:
        assert (result.system, result.elf) == ("make", project / "build" / "firmware.elf")
        return
    assert result.system == "platformio"
    assert result.needs_framework == FRAMEWORK_FILES  # named, not compiled
    assert {"src/tinyeff_model.c", "src/tinyeff/protocol/te_protocol.c"} <= set(result.compiled)
    assert not set(result.compiled) & set(FRAMEWORK_FILES)
    # everything else links; what is left is the port's, which the framework part defines
    assert result.left_for_framework and set(result.left_for_framework) <= PORT_FUNCTIONS
    assert result.framework == ARDUINO_CORES[board.platformio.platform].name


def test_a_second_build_compiles_nothing(compiled_build, monkeypatch):
    project, first = compiled_build
    monkeypatch.chdir(project.parent)
    again = build_project(Path(project.name))  # named relative to another directory this time
    assert again.sizes == first.sizes and again.rebuilt == 0


def test_build_command_says_what_it_built_and_what_it_left(kws_model, work, capsys):
    _need("arm-none-eabi-gcc")
    project = generate(kws_model, "nano33ble", "compiled", work / "cli-nano33ble")
    assert main(["build", str(project), "--jobs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "as PlatformIO would" in out and "ArduinoCore-mbed" in out
    assert f"not compiled, they need the Arduino core's Arduino.h, which only PlatformIO downloads: {', '.join(FRAMEWORK_FILES)}" in out
    assert "left for the framework part: te_port_" in out and re.search(r"text [\d,]+ B, data [\d,]+ B, bss [\d,]+ B", out)


def test_the_flags_are_platformios(compiled_build):
    """The compile line of a project file: build_flags, the framework's flags after the board's, the
    project's include paths; QEMU boards' Makefiles take the board's flags as they are."""
    project, result = compiled_build
    board = get_board(result.board)
    if result.system == "make":
        assert f"ARCH = {' '.join(board.cflags)}\n" in (project / "Makefile").read_text()
        return
    argv = (project / ".tinyeff-build" / "src" / "tinyeff_model.c.cmd").read_text().split("\0")
    core = ARDUINO_CORES[board.platformio.platform]
    assert argv[argv.index("-c") + 1] == core.c[0]  # CFLAGS first, as SCons's C command line has them
    assert '-DTE_BOARD_ID="%s"' % result.board in argv and f"-I{project / 'src'}" in argv
    assert argv.index(board.cflags[0]) < argv.index("-Os")


@pytest.mark.parametrize("board_id", REAL_ARM)
def test_tflm_projects_compile_as_cplusplus17_on_every_arduino_core(board_id, kws_model, tmp_path):
    """TFLM is C++17; ArduinoCore-mbed's C++14 comes after build_flags, so platformio.ini unflags it.
    (Built with mbed's flags alone, TFLM's kernels/internal/common.h fails on std::is_integral_v.)"""
    from tinyeff.build.platformio import main_env

    project = generate(kws_model, board_id, "tflm", tmp_path / board_id)
    env, core, _ = main_env(project, get_board(board_id))
    standards = [f for f in env.cxxflags if f.startswith("-std=")]
    assert standards and set(standards) == {"-std=gnu++17"}, (core.name, env.cxxflags)


def test_the_link_has_the_start_files_cplusplus_statics_need(tmp_path):
    """ArduinoCore-mbed does not build with -fno-use-cxa-atexit: a function-local static with a destructor
    then names __dso_handle, which the toolchain's crtbegin.o defines, as in PlatformIO's own link."""
    from tinyeff.build.platformio import link_without_framework

    _need("arm-none-eabi-g++")
    board = get_board("nano33ble")
    core = ARDUINO_CORES[board.platformio.platform]
    arch = (*board.cflags, *core.float_abi["cortex-m4"])
    (tmp_path / "s.cpp").write_text('struct S { ~S(); int n = 0; }; S::~S() {}\nextern "C" void te_port_putc(char c);\n'
                                    'extern "C" void te_protocol_main(void) { static S s; te_port_putc((char)++s.n); }\n')
    r = subprocess.run(["arm-none-eabi-g++", *arch, *core.cxx, *core.common, "-c", str(tmp_path / "s.cpp"), "-o", str(tmp_path / "s.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert link_without_framework(tmp_path / "s.elf", arch, [tmp_path / "s.o"], [], cxx=True) == ["te_port_putc"]


# ---------------------------------------------------------------- errors, one sentence each


def _error(capsys, *argv) -> str:
    assert main(["build", "--quiet", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinyeff: error: ") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def tflm_project(kws_model, work) -> Path:
    return generate(kws_model, "nucleo-l4r5zi", "tflm", work / "tflm-nucleo-l4r5zi")


def test_a_tflm_project_needs_a_tree(tflm_project, capsys):
    assert "is a TFLM project and needs a TFLM tree" in _error(capsys, tflm_project)


def test_a_directory_that_is_not_a_tflm_tree(tflm_project, tmp_path, capsys):
    assert f"'{tmp_path}' is not a TFLM tree" in _error(capsys, tflm_project, "--tflm-dir", tmp_path)


def test_a_tree_without_cmsis_nn_for_a_cortex_m_project(tflm_project, tmp_path, capsys):
    (tmp_path / "tensorflow/lite/micro").mkdir(parents=True)
    (tmp_path / "tensorflow/lite/micro/micro_interpreter.cc").write_text("")
    assert "builds TFLM with CMSIS-NN kernels but" in _error(capsys, tflm_project, "--tflm-dir", tmp_path)


def test_without_tflm_dir_the_tree_in_the_projects_tflm_folder_is_taken(tflm_project, tmp_path, capsys):
    """No --tflm-dir: a tree copied into the project's tflm/ (as its README offers) is the one built
    against; this one lacks CMSIS-NN, so the build stops at the kernel check, naming that folder."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(tflm_project, project)
    (project / "tflm/tensorflow/lite/micro").mkdir(parents=True)
    (project / "tflm/tensorflow/lite/micro/micro_interpreter.cc").write_text("")
    err = _error(capsys, project)
    assert "holds reference kernels" in err and f"'{(project / 'tflm').resolve()}'" in err, err


def test_esp32_needs_platformio(kws_model, work, capsys):
    project = generate(kws_model, "esp32-s3-devkitc-1", "compiled", work / "esp32")
    err = _error(capsys, project)
    assert "xtensa-lx7 core, which the Debian Arm toolchain cannot build" in err and "espressif32" in err


def test_a_missing_toolchain(kws_model, work, tmp_path, monkeypatch, capsys):
    project = generate(kws_model, "rpi-pico", "compiled", work / "no-toolchain")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert "'arm-none-eabi-gcc' is not installed; install the Debian toolchain" in _error(capsys, project)


def test_not_a_project(tmp_path, capsys):
    assert "is not a tinyeff project" in _error(capsys, tmp_path)


@pytest.fixture
def broken(kws_model, tmp_path):
    """A compiled-runtime PlatformIO project to break."""
    _need("arm-none-eabi-gcc")
    return generate(kws_model, "nucleo-l4r5zi", "compiled", tmp_path / "p")


def test_a_compile_error_shows_the_compiler(broken, capsys):
    with (broken / "src" / "tinyeff_model.c").open("a") as f:
        f.write("\nint broken(void) { return missing_name; }\n")
    err = _error(capsys, broken)
    assert "compiling src/tinyeff_model.c failed" in err and "'missing_name' undeclared" in err


def test_a_missing_source_is_a_link_error(broken, capsys):
    kernels = broken / "src" / "tinyeff" / "kernels"
    (kernels / "te_softmax.c").unlink()
    err = _error(capsys, broken)
    assert "left te_softmax undefined, which only the Arduino port may leave" in err


# ---------------------------------------------------------------- the Arduino port


@pytest.mark.parametrize("board_id", REAL_ARM)
def test_the_arduino_port_compiles_for_each_core(board_id, tmp_path):
    """With the stand-in Arduino.h, the board's flags and its core's (ARMv6-M assembly on the RP2040)."""
    _need("arm-none-eabi-g++")
    board = get_board(board_id)
    core = ARDUINO_CORES[board.platformio.platform]
    cpu = next(f.split("=")[1] for f in board.cflags if f.startswith("-mcpu="))
    arch_define = "-DARDUINO_ARCH_MBED" if core is ARDUINO_CORES["nordicnrf52"] else "-DARDUINO_ARCH_STM32"
    r = subprocess.run(["arm-none-eabi-g++", *board.cflags, *core.float_abi.get(cpu, ()), *core.cxx, *core.common, "-Wall", "-Wextra",
                        "-Werror", arch_define, "-DTE_BAUD=115200", "-DTE_CLOCK_HZ=1u", f"-I{STAND_IN}",
                        f"-I{ROOT / 'firmware' / 'protocol'}", "-c", str(ROOT / "firmware/ports/arduino/te_port_arduino.cpp"),
                        "-o", str(tmp_path / "port.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    nm = subprocess.run(["arm-none-eabi-nm", str(tmp_path / "port.o")], capture_output=True, text=True).stdout
    assert " T te_fault_entry" in nm and "HardFault_Handler" not in nm  # no handler symbol: it links on every core


def test_rp2040_latency_is_in_microseconds():
    board = get_board("rpi-pico")
    assert board.timer == "micros"  # the port's name for micros() on a core without a cycle counter
    port = (ROOT / "firmware/ports/arduino/te_port_arduino.cpp").read_text()
    assert 'return "micros";' in port and "return 1000000u;" in port


QEMU_TWINS = {"nucleo-l4r5zi": ("qemu-mps2-an386", False), "disco-f746ng": ("qemu-mps2-an500", True)}


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", sorted(QEMU_TWINS))
def test_the_arduino_port_runs_on_a_stand_in_core(board_id, kws_model, tmp_path):
    """The PlatformIO project's objects from `tinyeff build`, the port and main.cpp, on QEMU's board of the
    same core: bit-exact with host TFLM, a real stack mark, and a fault reported by the port although the
    core defines HardFault_Handler strongly (its vector table in flash on the M4, copied to RAM on the M7)."""
    from tinyeff.harness.device import QemuDevice
    from tinyeff.harness.dut import Dut
    from tinyeff.reference import tflm_outputs

    _need("arm-none-eabi-g++")
    _need("qemu-system-arm")
    qemu_id, ram_vectors = QEMU_TWINS[board_id]
    qemu = get_board(qemu_id)
    project = generate(kws_model, board_id, "compiled", tmp_path / "p")
    with (project / "platformio.ini").open("a") as f:
        f.write("build_src_flags = -DTE_FAULT_COMMAND\n")  # the protocol's te-fault: an undefined instruction
    build_project(project)
    board = get_board(board_id)
    core = ARDUINO_CORES[board.platformio.platform]
    cpu = next(f.split("=")[1] for f in board.cflags if f.startswith("-mcpu="))
    arch = [*board.cflags, *core.float_abi.get(cpu, ())]
    flags = [*arch, *core.cxx, *core.common, "-DARDUINO_ARCH_STM32", "-DTE_BAUD=115200", f"-DTE_CLOCK_HZ={board.clock_hz}u",
             f"-DTE_UART_BASE={qemu.baremetal.uart_base:#x}u", f"-DTE_QEMU_HZ={qemu.clock_hz}u", f"-I{STAND_IN}",
             f"-I{project / 'src'}", f"-I{project / 'src/tinyeff/protocol'}"] + (["-DTE_STUB_RAM_VECTORS"] if ram_vectors else [])
    objects = sorted(map(str, (project / ".tinyeff-build" / "src").rglob("*.o")))
    for source in (project / "src/main.cpp", project / "src/tinyeff/ports/arduino/te_port_arduino.cpp", STAND_IN / "core.cpp"):
        obj = tmp_path / f"{source.stem}.o"
        r = subprocess.run(["arm-none-eabi-g++", *flags, "-c", str(source), "-o", str(obj)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        objects.append(str(obj))
    script = (STAND_IN / "link.ld").read_text().replace("FLASH_ORIGIN", f"{qemu.baremetal.flash_origin:#x}")
    (tmp_path / "link.ld").write_text(script.replace("RAM_ORIGIN", f"{qemu.baremetal.ram_origin:#x}"))
    elf = tmp_path / "firmware.elf"
    r = subprocess.run(["arm-none-eabi-g++", *arch, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
                        "-Wl,--gc-sections", "-T", str(tmp_path / "link.ld"), *objects, "-o", str(elf)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    x = np.random.default_rng(0).integers(-128, 128, (3, 49, 10, 1), dtype=np.int8)
    reference = tflm_outputs(kws_model.read_bytes(), x).reshape(3, -1)
    with QemuDevice(elf, qemu) as device:
        dut = Dut(device, timeout=10)
        dut.wait_ready()
        for sample, want in zip(x, reference):
            assert dut.run(sample.tobytes()).output.tobytes() == want.astype(np.int8).tobytes()
        stack = dut.memory().stack_bytes
        assert 100 < stack < 16384  # painted span: 16 KiB below setup()'s stack pointer
        device.send(b"te-fault%")
        report = device.read_until(b"]\r\n", 10).decode()
    assert "stand-in core's own HardFault handler" not in report
    pc = re.search(r"e-\[hardfault pc=(0x[0-9a-f]{8})\]", report).group(1)
    at = int(pc, 16)  # the undefined instruction of te-fault, wherever the dispatcher was inlined
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", f"--start-address={at:#x}", f"--stop-address={at + 2:#x}", str(elf)],
                          capture_output=True, text=True).stdout
    assert re.search(rf"^\s*{at:x}:.*\budf\b", dump, re.MULTILINE), dump


# ---------------------------------------------------------------- with a TFLM tree (local: TINYEFF_TFLM_DIR)


@pytest.fixture(scope="module")
def tflm_tree() -> Path:
    tree = os.environ.get("TINYEFF_TFLM_DIR")
    if not tree:
        pytest.skip("no TFLM tree: set TINYEFF_TFLM_DIR to one made by create_tflm_tree.py (OPTIMIZED_KERNEL_DIR=cmsis_nn)")
    return Path(tree)


@pytest.mark.parametrize("board_id", ["nucleo-l4r5zi", "qemu-mps2-an386"])
def test_a_tflm_project_builds_against_a_tree(board_id, tflm_tree, kws_model, work):
    _need("arm-none-eabi-g++")
    project = generate(kws_model, board_id, "tflm", work / f"tflm-tree-{board_id}")
    result = build_project(project, tflm_tree)
    assert result.tflm_kernels == "CMSIS-NN" and result.tflm_dir == tflm_tree.resolve()
    nm = subprocess.run(["arm-none-eabi-nm", "-C", str(result.elf)], capture_output=True, text=True).stdout
    assert "tflite::Register_CONV_2D()" in nm and " arm_convolve_s8" in nm  # TFLM's CMSIS-NN kernel and CMSIS-NN itself
    if result.system == "platformio":
        assert len(result.compiled) > 300 and set(result.left_for_framework) <= PORT_FUNCTIONS
    # a later build, e.g. the one 'tinyeff bench' runs, finds the tree it was built with
    assert build_project(project).tflm_dir == result.tflm_dir
