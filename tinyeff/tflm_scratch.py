"""The arena TFLM's CMSIS-NN kernels take on a Cortex-M beyond what the host interpreter measures.

The host TFLM interpreter (the ``tflite-micro`` wheel) runs the reference kernels. On a Cortex-M a
project built with ``OPTIMIZED_KERNEL_DIR=cmsis_nn`` runs CMSIS-NN's instead, and those ask the
arena for more: scratch buffers for im2col and per-channel blocks (which live while their op runs)
and, on Helium (MVE) cores, persistent kernel sums of fully connected layers. How much depends on
which of CMSIS-NN's code paths the core compiles (its ``ARM_MATH_MVEI``/``ARM_MATH_DSP`` macros)
and on each op's shapes: a DS-CNN that fits with 1 KiB of margin on a Cortex-M4 needed 3.3 KiB
more on a Cortex-M55. The figures below restate the sizes CMSIS-NN's ``*_get_buffer_size``
functions return at the commit in ``generate.TFLM_COMMIT``, compiled with GCC (some paths differ
under Arm Compiler 6), and what TFLM's ``kernels/cmsis_nn/*.cc`` request with them.

The extra arena is bounded by the largest scratch one op asks for (TFLM's planner reuses scratch
space between ops, as it reuses tensors) plus every persistent buffer, which is never reused.
"""

from __future__ import annotations

import dataclasses

from tinyeff.codegen.quant import padding_before
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo

# CMSIS-NN's code path per core (the cores of the kit's boards; TFLM's make options in generate.py)
KERNEL_FAMILY = {"cortex-m0plus": "plain", "cortex-m4f": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp", "cortex-m55": "mve"}

_MVE_DW_BLOCK = 124  # channels per block of the MVE depthwise kernel (CMSIS-NN's CH_IN_BLOCK_MVE)
_REVERSE_TCONV_MIN_CHANNELS = 16  # above it a transpose conv runs as a conv of the reversed filter


@dataclasses.dataclass(frozen=True)
class CmsisNnArena:
    """What CMSIS-NN adds to the host-measured arena of one model on one core family."""

    family: str  # "mve", "dsp", "plain", or "reference" (no CMSIS-NN: nothing added)
    scratch_bytes: int  # the largest scratch any one op asks for
    scratch_op: int | None  # the op that asks for it
    persistent_bytes: int  # buffers kept for the interpreter's lifetime

    @property
    def extra_bytes(self) -> int:
        return self.scratch_bytes + self.persistent_bytes


def family_for_core(core: str | None) -> str:
    """CMSIS-NN's code path for CORE; "reference" for cores TFLM has no CMSIS-NN build for (ESP32)."""
    return KERNEL_FAMILY.get(core or "", "reference")


def cmsis_nn_arena(info: ModelInfo, family: str) -> CmsisNnArena:
    """The scratch and persistent bytes CMSIS-NN asks for, beyond the reference kernels, on FAMILY."""
    if family == "reference":
        return CmsisNnArena(family, 0, None, 0)
    scratch, where, persistent = 0, None, 0
    for op in info.ops:
        s, p = _op_needs(info, op, family)
        if s > scratch:
            scratch, where = s, op.index
        persistent += p
    return CmsisNnArena(family, scratch, where, persistent)


def _align(n: int, to: int) -> int:
    return -(-n // to) * to


def _conv_im2col(depth: int, family: str, int16: bool = False) -> int:
    """The im2col buffer of a general convolution whose patch is DEPTH values (kh * kw * in channels)."""
    if family == "mve":
        lanes = 8 if int16 else 16  # values per 128-bit register; four columns at a time
        return 4 * _align(depth, lanes) * (2 if int16 else 1)
    return 2 * (depth if int16 else _align(depth, 4)) * 2  # two columns widened to int16


def _op_needs(info: ModelInfo, op: OpInfo, family: str) -> tuple[int, int]:
    """(scratch, persistent) bytes CMSIS-NN's kernel for OP asks for."""
    t = info.tensors
    ins = [t[i] if i >= 0 else None for i in op.inputs]
    if not ins or ins[0] is None or not op.outputs:
        return 0, 0
    x, y = ins[0], t[op.outputs[0]]
    int16 = x.dtype == "INT16"
    o = op.options
    if op.op == "CONV_2D" and len(x.shape) == 4 and ins[1] is not None:
        return _conv(x, ins[1], y, o, family, int16), 0
    if op.op == "DEPTHWISE_CONV_2D" and len(x.shape) == 4 and ins[1] is not None:
        return _depthwise(x, ins[1], y, o, family, int16), 0
    if op.op == "FULLY_CONNECTED" and ins[1] is not None and x.dtype == "INT8" and ins[1].dtype == "INT8":
        return _fully_connected(ins[1], y, family)
    if op.op == "AVERAGE_POOL_2D" and family == "dsp" and len(x.shape) == 4:
        return x.shape[3] * 4, 0  # a row of int32 sums
    if op.op == "TRANSPOSE_CONV" and len(ins) > 2 and ins[1] is not None and ins[2] is not None and ins[2].dtype == "INT8":
        return _transpose_conv(ins[2], ins[1], y, o, family), 0  # inputs: output shape, filter, input
    if op.op == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(ins) > 2 and ins[2] is not None and x.dtype == "INT8":
        cells = ins[2].shape[0]  # the input-to-forget weights' rows
        return 0, 8 * cells * 4  # input and recurrent kernel sums folded into the four gates' biases
    return 0, 0


def _pads(x: TensorInfo, w: TensorInfo, o: dict) -> tuple[int, int]:
    _, kh, kw, _ = w.shape
    ph = padding_before(o.get("padding", "VALID"), x.shape[1], kh, o.get("stride_h", 1), o.get("dilation_h_factor", 1))
    pw = padding_before(o.get("padding", "VALID"), x.shape[2], kw, o.get("stride_w", 1), o.get("dilation_w_factor", 1))
    return ph, pw


def _conv(x: TensorInfo, w: TensorInfo, y: TensorInfo, o: dict, family: str, int16: bool) -> int:
    _, kh, kw, cin = w.shape
    if int16:  # one im2col path for every shape
        return _conv_im2col(kh * kw * cin, family, int16=True)
    ph, pw = _pads(x, w, o)
    sw, dw, dh = o.get("stride_w", 1), o.get("dilation_w_factor", 1), o.get("dilation_h_factor", 1)
    if (ph, pw, kh, kw, dw, dh) == (0, 0, 1, 1, 1, 1):
        return 0  # a 1x1 convolution is a matrix product on the input in place
    if family == "mve" and x.shape[1] == 1 and kh == 1 and dw == 1 and (sw * cin) % 4 == 0:
        return _conv_1xn_mve(x, w, y, pw, sw)
    return _conv_im2col(kh * kw * cin, family)


def _conv_1xn_mve(x: TensorInfo, w: TensorInfo, y: TensorInfo, pad: int, stride: int) -> int:
    """The 1xN convolution on Helium keeps the padded columns at both ends of the row."""
    cin, kw, out_w = x.shape[3], w.shape[2], y.shape[2]
    odd = ((out_w - 1) * stride + kw - x.shape[2]) % 2
    right = max(1, (pad + odd + stride - 1) // stride) if pad + odd else 0
    left = max(1, (pad + stride - 1) // stride) if pad else 0
    if left + right + max(out_w - left - right, 0) != out_w:
        return _conv_im2col(kw * cin, "mve")
    pad_right = right * cin if odd else pad * cin
    return max(kw * cin + pad * cin, (kw - 1) * cin + pad_right)


def _depthwise(x: TensorInfo, w: TensorInfo, y: TensorInfo, o: dict, family: str, int16: bool) -> int:
    _, kh, kw, cout = w.shape
    cin = x.shape[3]
    one_to_one = cin == cout and x.shape[0] == 1 and o.get("dilation_w_factor", 1) == 1 and o.get("dilation_h_factor", 1) == 1
    if int16:
        if not (cin == cout and one_to_one and kh * kw < 512):
            return 0
        return {"mve": 4 * cin * kh * kw * 2 + 8, "dsp": cin * kh * kw * 2}.get(family, 0)
    if family == "mve" and cin == 1 and cout > 1:  # run as a convolution with one input channel
        return _conv_im2col(kh * kw, "mve") + kh * kw * cout
    if not one_to_one:
        return 0
    if family == "mve":
        return 4 * _MVE_DW_BLOCK * kh * kw
    ph, pw = _pads(x, w, o)
    if family != "dsp" or (kh, kw) == (3, 3) and ph <= 1 and pw <= 1:
        return 0
    return cin * kh * kw * 2


def _fully_connected(w: TensorInfo, y: TensorInfo, family: str) -> tuple[int, int]:
    units, depth = w.shape[0], w.shape[-1]
    if len(y.shape) > 2 and depth % 4 == 0:  # run as a 1x1 convolution
        per_tensor = len(w.scales) <= 1
        return (units * 4 * 2 if per_tensor else 0), 0  # per-channel multipliers and shifts made up
    if family == "mve":
        # kernel sums: persistent when the weights are constant (KERNELS_OPTIMIZED_FOR_SPEED), else scratch
        return (0, units * 4) if w.constant else (units * 4, 0)
    return 0, 0


def _transpose_conv(x: TensorInfo, w: TensorInfo, y: TensorInfo, o: dict, family: str) -> int:
    cout, kh, kw, cin = w.shape
    sh, sw = o.get("stride_h", 1), o.get("stride_w", 1)
    if sh <= 2 and sw <= 2 and cin > _REVERSE_TCONV_MIN_CHANNELS:
        # a convolution over the upsampled input, and the reversed filter beside it
        return _conv_im2col(kh * kw * cin, family) + cin * kh * kw * cout
    row = ((x.shape[2] - 1) * sw + max(kw, sh)) * cout
    return row * max(kh, sh) * 4
