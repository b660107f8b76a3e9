"""What a TensorFlow Lite Micro project for a model needs: its op resolver and its arena size.

The resolver registers exactly the model's ops (``MicroMutableOpResolver<N>`` with N their
count), so the firmware links no kernel it does not run. The arena is the size the host TFLM
interpreter records for the model, plus what CMSIS-NN's kernels take beyond it on the board's core
(``tflm_scratch``), plus ``ARENA_MARGIN_BYTES``.
"""

from __future__ import annotations

import re

from tinyeff.errors import TinyeffError

# The Add* methods of tflite::MicroMutableOpResolver (tensorflow/lite/micro/micro_mutable_op_resolver.h)
# for builtin ops; a builtin's method is its name without underscores, case-insensitively.
RESOLVER_METHODS = (
    "AddAbs", "AddAdd", "AddAddN", "AddArgMax", "AddArgMin", "AddAssignVariable", "AddAveragePool2D",
    "AddBatchMatMul", "AddBatchToSpaceNd", "AddBroadcastArgs", "AddBroadcastTo", "AddCallOnce", "AddCast",
    "AddCeil", "AddConcatenation", "AddConv2D", "AddCos", "AddCumSum", "AddDepthToSpace", "AddDepthwiseConv2D",
    "AddDequantize", "AddDetectionPostprocess", "AddDiv", "AddDynamicUpdateSlice", "AddEmbeddingLookup",
    "AddElu", "AddEqual", "AddExp", "AddExpandDims", "AddFill", "AddFloor", "AddFloorDiv", "AddFloorMod",
    "AddFullyConnected", "AddGather", "AddGatherNd", "AddGreater", "AddGreaterEqual", "AddHardSwish", "AddIf",
    "AddL2Normalization", "AddL2Pool2D", "AddLeakyRelu", "AddLess", "AddLessEqual", "AddLog", "AddLogicalAnd",
    "AddLogicalNot", "AddLogicalOr", "AddLogistic", "AddLogSoftmax", "AddMaximum", "AddMaxPool2D",
    "AddMirrorPad", "AddMean", "AddMinimum", "AddMul", "AddNeg", "AddNotEqual", "AddPack", "AddPad", "AddPadV2",
    "AddPrelu", "AddQuantize", "AddReadVariable", "AddReduceAll", "AddReduceMax", "AddReduceMin", "AddRelu",
    "AddRelu6", "AddReshape", "AddResizeBilinear", "AddResizeNearestNeighbor", "AddReverseV2", "AddRound",
    "AddRsqrt", "AddSelectV2", "AddShape", "AddSin", "AddSlice", "AddSoftmax", "AddSpaceToBatchNd",
    "AddSpaceToDepth", "AddSplit", "AddSplitV", "AddSqueeze", "AddSqrt", "AddSquare", "AddSquaredDifference",
    "AddStridedSlice", "AddSub", "AddSum", "AddSvdf", "AddTanh", "AddTransposeConv", "AddTranspose",
    "AddUnpack", "AddUnidirectionalSequenceLSTM", "AddVarHandle", "AddWhile", "AddZerosLike",
)
_BY_KEY = {m[3:].lower(): m for m in RESOLVER_METHODS}

# The host recording misses up to 64 B that TFLM takes while it initializes (measured on the kit's
# and MLPerf Tiny's models), TFLM aligns the arena's start up to 16 B, and a 32-bit target needs
# less than the 64-bit host for pointers in persistent structures; the rest is headroom for a
# TFLM release that plans slightly differently.
ARENA_MARGIN_BYTES = 1024


def resolver_methods(ops: tuple[str, ...]) -> list[str]:
    """The MicroMutableOpResolver Add* call for each op in OPS (builtin names), in order."""
    methods, missing = [], []
    for op in ops:
        m = _BY_KEY.get(re.sub(r"_", "", op).lower())
        (methods if m else missing).append(m or op)
    if missing:
        raise TinyeffError(f"TFLM's op resolver has no kernel for {', '.join(missing)}; "
                           "replace these ops in the model before converting it")
    return methods


def arena_bytes(measured: int, cmsis_nn_extra: int = 0) -> int:
    """The arena a TFLM project declares: the host TFLM measurement, what CMSIS-NN adds on the
    board's core (tflm_scratch.cmsis_nn_arena), and the margin, 16-aligned."""
    return -(-(measured + cmsis_nn_extra + ARENA_MARGIN_BYTES) // 16) * 16
