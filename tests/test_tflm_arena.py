"""The arena a TFLM project declares covers what CMSIS-NN's kernels take on the board's core.

The host TFLM interpreter runs reference kernels; a Cortex-M build runs CMSIS-NN's, whose scratch
buffers depend on the core (Helium, DSP extension, neither) and on each op's shapes. The expected
figures are worked out by hand from CMSIS-NN's buffer-size rules (tinyeff/tflm_scratch.py cites
them); the device-side check (te-mem's "used" figure against the declared arena, Cortex-M4/M7/M33/M55
TFLM builds in QEMU) is in the README, since CI has no TFLM tree to build.
"""

from __future__ import annotations

import json

import pytest

from tinyeff import tflm
from tinyeff.boards import get_board
from tinyeff.footprint import host_tflm_arena, load_model_file
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo
from tinyeff.generate import generate, runtime_footprints
from tinyeff.tflm_scratch import cmsis_nn_arena, family_for_core

KWS_ARENA = 24_272  # host TFLM, MLPerf Tiny's KWS reference


@pytest.mark.parametrize("family, scratch, op, persistent", [
    # the first conv's im2col: two columns of its 10x4x1 patch as int16 (40 values, a multiple of 4)
    ("plain", 2 * 40 * 2, 0, 0),
    # the DSP average pool keeps one int32 sum per channel (64); 3x3 depthwise convs padded by 1 need none
    ("dsp", 64 * 4, 9, 0),
    # Helium's depthwise conv works on blocks of 124 channels, four 3x3 patches at a time; the dense
    # layer's 12 kernel sums are computed once and kept
    ("mve", 4 * 124 * 3 * 3, 1, 12 * 4),
    ("reference", 0, None, 0),
])
def test_kws_needs_by_core_family(kws_model, family, scratch, op, persistent):
    _, info = load_model_file(kws_model)
    need = cmsis_nn_arena(info, family)
    assert (need.scratch_bytes, need.scratch_op, need.persistent_bytes) == (scratch, op, persistent)


@pytest.mark.parametrize("board_id", ["qemu-mps3-an547", "qemu-mps2-an386", "rpi-pico", "esp32-s3-devkitc-1"])
def test_generated_arena_is_host_plus_cmsis_nn_plus_margin(kws_model, board_id, tmp_path):
    board = get_board(board_id)
    data, info = load_model_file(kws_model)
    project = generate(kws_model, board_id, "tflm", tmp_path / "p")
    man = json.loads((project / "tinyeff.json").read_text())
    need = cmsis_nn_arena(info, family_for_core(board.core))
    assert man["tflm_arena_measured_bytes"] == host_tflm_arena(data, "model").total == KWS_ARENA
    assert man["tflm_cmsis_nn"]["kernels"] == need.family
    assert man["arena_bytes"] == -(-(KWS_ARENA + need.extra_bytes + tflm.ARENA_MARGIN_BYTES) // 16) * 16
    assert f"#define TINYEFF_ARENA_BYTES {man['arena_bytes']}\n" in (project / "src" / "tinyeff_model.h").read_text()
    # inspect --board reports the same RAM for the tflm runtime as the project declares
    tflm_fp, _ = runtime_footprints(data, info, "kws", KWS_ARENA, board)
    assert tflm_fp.ram_bytes == man["arena_bytes"]


# ---------------------------------------------------------------- shapes no model above has


def _model(op: str, tensors: list[tuple[tuple[int, ...], str, bool]], inputs: list[int], options: dict) -> ModelInfo:
    ts = tuple(TensorInfo(i, f"t{i}", shape, dtype, (0.1,), (0,), 0, const, 0) for i, (shape, dtype, const) in enumerate(tensors))
    out = len(ts) - 1
    return ModelInfo("m", 0, "", ts, (OpInfo(0, op, tuple(inputs), (out,), 0, options),), (inputs[0],), (out,), 1)


def test_transpose_conv_reversed_filter_and_its_conv():
    # 32 input channels (above 16) and stride 2: a conv over the upsampled input (im2col of 3x3x32
    # as int16, two columns) beside the reversed 8x3x3x32 filter
    m = _model("TRANSPOSE_CONV", [((4,), "INT32", True), ((8, 3, 3, 32), "INT8", True), ((1, 5, 5, 32), "INT8", False),
                                  ((1, 10, 10, 8), "INT8", False)], [0, 1, 2], {"stride_h": 2, "stride_w": 2, "padding": "SAME"})
    assert cmsis_nn_arena(m, "dsp").scratch_bytes == 2 * 288 * 2 + 32 * 9 * 8
    assert cmsis_nn_arena(m, "mve").scratch_bytes == 4 * 288 + 32 * 9 * 8


def test_transpose_conv_with_few_channels_accumulates_rows():
    # 8 input channels: int32 accumulators for kernel-height rows of the output's width
    m = _model("TRANSPOSE_CONV", [((4,), "INT32", True), ((4, 3, 3, 8), "INT8", True), ((1, 5, 5, 8), "INT8", False),
                                  ((1, 10, 10, 4), "INT8", False)], [0, 1, 2], {"stride_h": 2, "stride_w": 2, "padding": "SAME"})
    assert cmsis_nn_arena(m, "plain").scratch_bytes == ((5 - 1) * 2 + 3) * 4 * 3 * 4


def test_depthwise_with_one_input_channel_runs_as_a_conv_on_helium():
    m = _model("DEPTHWISE_CONV_2D", [((1, 8, 8, 1), "INT8", False), ((1, 3, 3, 16), "INT8", True), ((1, 8, 8, 16), "INT8", False)],
               [0, 1], {"padding": "SAME", "depth_multiplier": 16})
    assert cmsis_nn_arena(m, "mve").scratch_bytes == 4 * 16 + 9 * 16  # im2col of 9 values in one 16-lane row, and the filter
    assert cmsis_nn_arena(m, "dsp").scratch_bytes == 0  # a channel multiplier: the plain kernel


def test_one_row_convolution_on_helium_keeps_the_padded_ends():
    # a 1x5 kernel over a 1x16 row of 8 channels, SAME: 2 columns of padding at each end
    m = _model("CONV_2D", [((1, 1, 16, 8), "INT8", False), ((4, 1, 5, 8), "INT8", True), ((1, 1, 16, 4), "INT8", False)],
               [0, 1], {"padding": "SAME", "stride_w": 1, "stride_h": 1})
    assert cmsis_nn_arena(m, "mve").scratch_bytes == 5 * 8 + 2 * 8
    assert cmsis_nn_arena(m, "dsp").scratch_bytes == 2 * 40 * 2


def test_int16_conv_uses_its_own_im2col():
    m = _model("CONV_2D", [((1, 8, 8, 3), "INT16", False), ((4, 3, 3, 3), "INT8", True), ((1, 8, 8, 4), "INT16", False)],
               [0, 1], {"padding": "SAME"})
    assert cmsis_nn_arena(m, "dsp").scratch_bytes == 2 * 27 * 2
    assert cmsis_nn_arena(m, "mve").scratch_bytes == 4 * 32 * 2  # 27 values in 8-lane rows, four at a time
