"""The tflm/library.json of a generated PlatformIO project against the TFLM tree it wraps.

The tree comes from TFLM's create_tflm_tree.py with the board's TFLM_MAKE_OPTIONS. TREE below is
a sample of what that script wrote at the pinned commit (90b983c2b3f1) from its pinned CMSIS-NN
(4ab83cc3cc98) and CMSIS_6 (5782d6f80579) snapshots: a file, and the quoted includes it has. With
OPTIMIZED_KERNEL_DIR=cmsis_nn (the Cortex-M boards) TFLM's kernels/cmsis_nn/*.cc replace the
reference kernels and call CMSIS-NN, whose C sources must be built too. Checked on this machine,
not in CI (no TFLM sources here): the whole Cortex-M4 tree (315 sources) compiles with exactly
these flags (Debian arm-none-eabi-gcc 12.2), and the KWS firmware built on it (the project's
sources with platformio.ini's defines, the QEMU board port in place of the Arduino core) is
bit-exact with host TFLM on 20 inputs in QEMU mps2-an386, at 9.2 M emulated instructions (-Os).
PlatformIO's own source filter (platformio.fs.match_src_files) picks the files, as in a build.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyeff.boards import get_board
from tinyeff.generate import TFLM_MAKE_OPTIONS, generate

COMMON = {
    "tensorflow/lite/micro/micro_interpreter.cc": ["tensorflow/lite/micro/micro_interpreter.h", "flatbuffers/flatbuffers.h"],
    "tensorflow/lite/micro/micro_interpreter.h": [],
    "tensorflow/lite/kernels/internal/common.h": ["fixedpoint/fixedpoint.h"],
    "tensorflow/lite/kernels/internal/reference/sub.h": ["ruy/profiler/instrumentation.h"],
    "signal/src/kiss_fft_wrappers/kiss_fft_int16.cc": ["kiss_fft.c", "tools/kiss_fftr.c"],
    "third_party/flatbuffers/include/flatbuffers/flatbuffers.h": [],
    "third_party/gemmlowp/fixedpoint/fixedpoint.h": [],
    "third_party/ruy/ruy/profiler/instrumentation.h": [],
    "third_party/kissfft/kiss_fft.c": [],  # compiled inside signal's wrappers, not on its own
    "third_party/kissfft/tools/kiss_fftr.c": [],
}
CMSIS_NN = {
    "tensorflow/lite/micro/kernels/cmsis_nn/conv.cc": ["Include/arm_nnfunctions.h"],
    "tensorflow/lite/micro/cortex_m_generic/micro_time.cc": ["tensorflow/lite/micro/micro_time.h"],
    "tensorflow/lite/micro/micro_time.h": [],
    "third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_s8.c": ["arm_nnfunctions.h", "arm_nnsupportfunctions.h"],
    "third_party/cmsis_nn/Source/NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c": ["arm_nnsupportfunctions.h"],
    "third_party/cmsis_nn/Include/arm_nnfunctions.h": [],
    "third_party/cmsis_nn/Include/arm_nnsupportfunctions.h": ["Internal/arm_nn_compiler.h", "arm_nn_math_types.h"],
    "third_party/cmsis_nn/Include/arm_nn_math_types.h": ["Internal/arm_nn_config.h"],
    "third_party/cmsis_nn/Include/Internal/arm_nn_compiler.h": [],
    "third_party/cmsis_nn/Include/Internal/arm_nn_config.h": [],
    # only the top level of CMSIS/Core/Include is copied: its core_cm*.h need m-profile/, absent
    "third_party/cmsis/CMSIS/Core/Include/core_cm4.h": ["cmsis_compiler.h", "m-profile/armv7m_mpu.h"],
    "third_party/cmsis/CMSIS/Core/Include/cmsis_compiler.h": [],
}
SOURCES = ("c", "cc", "cpp", "S")


def _tree(root: Path, files: dict[str, list[str]]) -> Path:
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    return root


def _library(kws_model, board_id: str, tmp_path: Path) -> tuple[dict, Path]:
    project = generate(kws_model, board_id, "tflm", tmp_path / board_id)
    return json.loads((project / "tflm" / "library.json").read_text())["build"], project


def _compiled(build: dict, tree: Path) -> set[str]:
    from platformio.fs import match_src_files

    return set(match_src_files(str(tree / build["srcDir"]), build["srcFilter"], SOURCES))


def _resolves(build: dict, tree: Path, files: dict[str, list[str]], start: str) -> list[str]:
    """Quoted includes reachable from START that no -I directory (or START's own) resolves."""
    dirs = [tree / f[2:] for f in build["flags"] if f.startswith("-I")] + [tree / build["includeDir"]]
    missing, todo, seen = [], [start], set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        for inc in files[rel]:
            hit = next((d / inc for d in [(tree / rel).parent, *dirs] if (d / inc).is_file()), None)
            if hit is None:
                missing.append(f"{rel}: {inc}")
            else:
                todo.append(hit.resolve().relative_to(tree.resolve()).as_posix())
    return missing


def test_cortex_m_tflm_library_builds_the_cmsis_nn_tree(kws_model, tmp_path):
    board = get_board("nucleo-l4r5zi")
    assert "OPTIMIZED_KERNEL_DIR=cmsis_nn" in TFLM_MAKE_OPTIONS[board.core]
    build, project = _library(kws_model, board.id, tmp_path)
    files = {**COMMON, **CMSIS_NN}
    tree = _tree(tmp_path / "tree", files)
    compiled = _compiled(build, tree)
    assert {f for f in files if f.endswith((".c", ".cc"))} - compiled == {
        "third_party/kissfft/kiss_fft.c", "third_party/kissfft/tools/kiss_fftr.c"}
    for source in compiled:
        assert _resolves(build, tree, files, source) == [], source
    defines = {f[2:] for f in build["flags"] if f.startswith("-D")}
    # TFLM's own cmsis_nn build: -D<OPTIMIZED_KERNEL_DIR>, its default OPTIMIZE_KERNELS_FOR, CMSIS-NN
    # without float; PROJECT_GENERATION stubs cortex_m_generic's DWT timer (no device header here)
    assert {"CMSIS_NN", "KERNELS_OPTIMIZED_FOR_SPEED", "ARM_NN_ENABLE_F16=0", "ARM_NN_ENABLE_F32=0",
            "PROJECT_GENERATION", "TF_LITE_STATIC_MEMORY"} <= defines
    # the tree's partial CMSIS core headers stay off the path PlatformIO passes on to the project
    assert not any("CMSIS/Core" in f for f in build["flags"])
    readme = (project / "README.md").read_text()  # the command, inside its code block, and what it needs
    assert f'\n      --makefile_options="{TFLM_MAKE_OPTIONS[board.core]}" <this project>/tflm\n' in readme
    assert "Pillow" in readme and "third_party/cmsis_nn" in readme


def test_esp32_tflm_library_has_no_cmsis_nn(kws_model, tmp_path):
    board = get_board("esp32-s3-devkitc-1")
    assert board.core not in TFLM_MAKE_OPTIONS  # the tree is made with reference kernels
    build, _ = _library(kws_model, board.id, tmp_path)
    tree = _tree(tmp_path / "tree", COMMON)
    compiled = _compiled(build, tree)
    assert compiled == {"tensorflow/lite/micro/micro_interpreter.cc", "signal/src/kiss_fft_wrappers/kiss_fft_int16.cc"}
    for source in compiled:
        assert _resolves(build, tree, COMMON, source) == [], source
    assert not [f for f in build["flags"] if "cmsis" in f.lower() or f[2:] in ("PROJECT_GENERATION", "TF_LITE_MCU_DEBUG_LOG")]


@pytest.mark.parametrize("board_id", ["nucleo-l4r5zi", "esp32-s3-devkitc-1"])
def test_tflm_abi_defines_reach_the_project_sources(kws_model, board_id, tmp_path):
    """PlatformIO gives a library's -D flags to its own sources only (it passes on include paths,
    not defines): TF_LITE_STATIC_MEMORY changes TfLiteTensor's layout, so the project's sources,
    which include TFLM's headers, must get it from platformio.ini."""
    from platformio.project.config import ProjectConfig

    project = generate(kws_model, board_id, "tflm", tmp_path / board_id)
    config = ProjectConfig(str(project / "platformio.ini"))
    assert "-DTF_LITE_STATIC_MEMORY" in config.get(f"env:{board_id}", "build_flags")
