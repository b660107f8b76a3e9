import dataclasses
import json
import re
import subprocess

import numpy as np
import pytest

from tinyeff import __version__
from tinyeff.boards import all_boards, get_board, load_board_file
from tinyeff.cli import main
from tinyeff.codegen import compile_model, paths
from tinyeff.errors import TinyeffError
from tinyeff.footprint import load_model_file
from tinyeff.generate import RuntimeFootprint, _require_fit, generate
from tinyeff.resources import resource_dir

REQUIRED = {"qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547", "nucleo-l4r5zi",
            "nucleo-h7a3zi-q", "disco-f746ng", "nano33ble", "rpi-pico", "esp32-s3-devkitc-1"}


def test_every_required_board_loads_and_validates():
    boards = all_boards()
    assert REQUIRED <= set(boards)
    for b in boards.values():
        assert b.flash_kib > b.app_flash_kib and b.ram_kib > b.app_ram_kib and b.clock_hz > 0
        assert (b.baremetal is not None) == b.emulated


def test_unknown_keys_and_wrong_ids_are_refused(tmp_path):
    text = all_boards_path("qemu-mps2-an386").read_text()
    (tmp_path / "qemu-mps2-an386.toml").write_text(text.replace("clock_hz", "clock_mhz"))
    with pytest.raises(TinyeffError, match="unknown keys clock_mhz"):
        load_board_file(tmp_path / "qemu-mps2-an386.toml")
    (tmp_path / "other.toml").write_text(text)
    with pytest.raises(TinyeffError, match="name the file qemu-mps2-an386.toml"):
        load_board_file(tmp_path / "other.toml")


def all_boards_path(board_id):
    from tinyeff.resources import resource_dir

    return resource_dir("boards") / f"{board_id}.toml"


def test_unknown_board_suggests_close_ids(capsys):
    assert main(["generate", "x.tflite", "--board", "nucleo-l4r5", "--out", "nowhere"]) == 2
    err = capsys.readouterr().err
    assert "unknown board 'nucleo-l4r5'" in err and "nucleo-l4r5zi" in err


def test_generated_project_has_headers_manifest_and_refuses_overwrite(kws_model, tmp_path):
    out = generate(kws_model, "qemu-mps2-an386", "compiled", tmp_path / "fw")
    data, info = load_model_file(kws_model)
    man = json.loads((out / "tinyeff.json").read_text())
    assert man["model_sha256"] == info.sha256 and man["board"] == "qemu-mps2-an386" and man["runtime"] == "compiled"
    assert man["arena_bytes"] == compile_model(data, info, "kws").plan.arena_bytes
    assert man["ops"] == list(info.op_names) and man["memory_plan"]["inplace_layers"]
    for f in ("src/tinyeff_model.c", "src/tinyeff_model.h", "Makefile", "link.ld", "README.md"):
        first = (out / f).read_text().splitlines()[0]
        assert f"tinyeff {__version__}" in first and info.sha256 in first and "qemu-mps2-an386" in first
    with pytest.raises(TinyeffError, match="already exists \\(a project tinyeff generated\\)"):
        generate(kws_model, "qemu-mps2-an386", "compiled", out)
    generate(kws_model, "qemu-mps2-an386", "compiled", out, force=True)


def test_model_too_large_for_the_board_writes_nothing(kws_model, tmp_path):
    data, info = load_model_file(kws_model)
    compiled = compile_model(data, info, "kws")
    tiny = dataclasses.replace(get_board("qemu-mps2-an386"), ram_kib=8, app_ram_kib=4)
    need = f"{compiled.plan.arena_bytes:,}"
    assert compiled.plan.arena_bytes > 4096
    with pytest.raises(TinyeffError, match="does not fit qemu-mps2-an386 under the compiled runtime "
                                           f"\\(RAM {need} B > 4,096 B left for a model\\); shrink"):
        _require_fit(RuntimeFootprint("compiled", compiled.model.const_bytes, compiled.plan.arena_bytes), tiny, "kws")


def _abs_model(tmp_path):
    """A model with ABS, an op TFLM runs and the compiled runtime does not."""
    from tinyeff._native import tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    x = keras.Input((8,), batch_size=1)
    model = keras.Model(x, keras.ops.abs(keras.layers.Dense(4)(x)))
    path = tmp_path / "abs.tflite"
    path.write_bytes(keras_to_int8(model, np.random.default_rng(0).normal(size=(16, 8)).astype(np.float32)))
    return path


def test_unsupported_op_leaves_no_project(tmp_path):
    path = _abs_model(tmp_path)
    with pytest.raises(TinyeffError, match="ABS, which the compiled runtime does not support"):
        generate(path, "qemu-mps2-an386", "compiled", tmp_path / "fw")
    assert not (tmp_path / "fw").exists() and not list(tmp_path.glob(".fw.*"))


def test_auto_runtime_takes_tflm_for_what_the_compiled_runtime_cannot_run_and_says_why(kws_model, tmp_path, capsys):
    from tinyeff.cli import main

    assert main(["generate", str(_abs_model(tmp_path)), "--board", "nucleo-l4r5zi", "--out", str(tmp_path / "abs")]) == 0
    said = capsys.readouterr().out
    assert "the compiled runtime cannot run it (" in said and "uses ABS" in said and "TensorFlow Lite Micro instead" in said
    man = json.loads((tmp_path / "abs" / "tinyeff.json").read_text())
    assert man["runtime"] == "tflm" and "ABS" in man["runtime_chosen_because"]
    assert "ADDABS" in (tmp_path / "abs" / "src" / "tinyeff_model_tflm.cpp").read_text().upper()
    # a model it can run stays on the compiled runtime, with nothing to explain
    assert main(["generate", str(kws_model), "--board", "nucleo-l4r5zi", "--out", str(tmp_path / "kws")]) == 0
    man = json.loads((tmp_path / "kws" / "tinyeff.json").read_text())
    assert man["runtime"] == "compiled" and "runtime_chosen_because" not in man
    assert "instead" not in capsys.readouterr().out


ARDUINO_BOARDS = [b.id for b in all_boards().values() if b.platformio and b.platformio.framework == "arduino"]


def _platformio_config(project):
    from platformio.project.config import ProjectConfig

    config = ProjectConfig(str(project / "platformio.ini"))
    assert config.validate() and config.warnings == []
    return config


def test_platformio_validation_catches_a_misspelled_option(tmp_path):
    from platformio.project.config import ProjectConfig

    (tmp_path / "platformio.ini").write_text("[env:x]\nplatfrom = ststm32\nboard = nucleo_l4r5zi\n")
    config = ProjectConfig(str(tmp_path / "platformio.ini"))
    config.validate()
    assert config.warnings  # the check the generated projects pass is not vacuous


@pytest.mark.parametrize("board_id", ARDUINO_BOARDS)
def test_tflm_project_for_every_real_board(kws_model, board_id, tmp_path):
    from tinyeff import tflm
    from tinyeff.footprint import host_tflm_arena
    from tinyeff.tflm_scratch import cmsis_nn_arena, family_for_core

    board = get_board(board_id)
    project = generate(kws_model, board_id, "tflm", tmp_path / board_id)
    config = _platformio_config(project)
    env = f"env:{board_id}"
    assert [config.get(env, k) for k in ("platform", "board", "framework")] == \
        [board.platformio.platform, board.platformio.board, [board.platformio.framework]]
    assert config.get(env, "lib_deps") == ["tflm=symlink://tflm"]
    json.loads((project / "tflm" / "library.json").read_text())
    # the resolver registers exactly the model's ops, and N is their count
    data, info = load_model_file(kws_model)
    source = (project / "src" / "tinyeff_model_tflm.cpp").read_text()
    calls = re.findall(r"resolver\.(Add\w+)\(\);", source)
    assert sorted(calls) == sorted({"Add" + op.title().replace("_", "") for op in info.op_names}) == \
        sorted({"AddConv2D", "AddDepthwiseConv2D", "AddAveragePool2D", "AddReshape", "AddFullyConnected", "AddSoftmax"})
    assert re.search(r"MicroMutableOpResolver<(\d+)>", source).group(1) == str(len(calls)) == "6"
    # the arena is the host TFLM measurement, what CMSIS-NN adds on this core, and the documented margin
    measured = host_tflm_arena(data, "kws").total
    assert measured == 24_272
    header = (project / "src" / "tinyeff_model.h").read_text()
    arena = int(re.search(r"#define TINYEFF_ARENA_BYTES (\d+)", header).group(1))
    extra = cmsis_nn_arena(info, family_for_core(board.core)).extra_bytes
    assert arena == json.loads((project / "tinyeff.json").read_text())["arena_bytes"] == \
        -(-(24_272 + extra + tflm.ARENA_MARGIN_BYTES) // 16) * 16
    # the model array holds the .tflite byte for byte
    array = (project / "src" / "model_data.c").read_text().split("{", 1)[1]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", array)) == data


@pytest.mark.parametrize("board_id", ARDUINO_BOARDS)
def test_compiled_runtime_platformio_project_for_every_real_board(kws_model, board_id, tmp_path):
    project = generate(kws_model, board_id, "compiled", tmp_path / board_id)
    _platformio_config(project)
    path = json.loads((project / "tinyeff.json").read_text())["kernel_path"]
    assert path == paths.path_for_core(get_board(board_id).core)
    kernels = [f"src/tinyeff/kernels/{f}" for f in paths.files(path)]
    for rel in ("src/main.cpp", "src/tinyeff_model.c", *kernels,
                "src/tinyeff/ports/arduino/te_port_arduino.cpp", "README.md", "tinyeff.json"):
        assert (project / rel).is_file(), rel


@pytest.mark.parametrize("board_id", [b.id for b in all_boards().values() if b.core.startswith("cortex-m")])
def test_compiled_runtime_c_builds_with_werror_for_every_cortex_m_board(kws_model, board_id, tmp_path):
    """The C the compiled runtime puts on a board (model, its path's kernels, protocol) with the board's own flags."""
    board = get_board(board_id)
    data, info = load_model_file(kws_model)
    path = paths.path_for_core(board.core)
    compile_model(data, info, "kws", board_id, path=path).write(tmp_path)
    fw = resource_dir("firmware")
    kernels = [fw / "kernels" / f for f in paths.sources(path)]
    for source in (tmp_path / "tinyeff_model.c", *kernels, fw / "protocol" / "te_protocol.c"):
        cmd = ["arm-none-eabi-gcc", *board.cflags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-c",
               f"-I{tmp_path}", f"-I{fw / 'kernels'}", f"-I{fw / 'protocol'}", str(source), "-o", str(tmp_path / "x.o")]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_a_board_with_the_kits_own_platformio_manifest_carries_it(kws_model, tmp_path):
    """NUCLEO-H7A3ZI-Q: PlatformIO's manifest lacks Arduino, so the project brings one naming
    stm32duino's variant; PlatformIO's own board loader must accept it."""
    from platformio.platform.board import PlatformBoardConfig

    board = get_board("nucleo-h7a3zi-q")
    project = generate(kws_model, board.id, "tflm", tmp_path / "fw")
    config = _platformio_config(project)
    manifest = PlatformBoardConfig(str(project / "boards" / f"{board.platformio.board}.json"))
    assert manifest.id == config.get(f"env:{board.id}", "board") == board.platformio.board
    assert "arduino" in manifest.get("frameworks") and manifest.get("build.cpu") == board.core
    assert manifest.get("upload.maximum_size") == board.flash_kib * 1024
    assert manifest.get("build.f_cpu") == f"{board.clock_hz}L"


def test_tflm_on_a_make_board_needs_a_tflm_tree_and_says_so(kws_model, tmp_path):
    """The tflm runtime on a QEMU board builds TFLM's sources from TFLM_DIR; without a tree,
    make stops with one sentence saying what to do (a real make run)."""
    project = generate(kws_model, "qemu-mps2-an386", "tflm", tmp_path / "fw")
    man = json.loads((project / "tinyeff.json").read_text())
    assert man["runtime"] == "tflm" and (project / "src" / "tinyeff_model_tflm.cpp").is_file()
    assert not (project / "src" / "tinyeff" / "kernels").exists()
    for extra, says in (([], "TFLM_DIR is not set"), ([f"TFLM_DIR={tmp_path}"], "is not a TFLM tree")):
        r = subprocess.run(["make", "-C", str(project), *extra], capture_output=True, text=True)
        assert r.returncode != 0 and says in r.stderr and "create_tflm_tree.py" in r.stderr
    assert "make TFLM_DIR=" in (project / "README.md").read_text()
