"""Lower an int8 .tflite model to a list of kernel calls with constant parameters.

Each op becomes a ``Layer``: which C kernel runs it, the fields of its const parameter struct,
the constant arrays it points to (weights, biases, per-channel multipliers and shifts), and
whether it can run in place. Everything TFLM computes when it prepares an op is computed here,
once, so the device only runs the arithmetic.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyeff.codegen import indexing, paths, quant
from tinyeff.codegen.checks import check_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint.tflite_file import ModelInfo, OpInfo, TensorInfo, constant_array, float_boundary

# op -> C kernel; RESHAPE and SQUEEZE are no kernel at all: the output shares the input's bytes.
KERNELS = {
    "CONV_2D": "te_conv2d",
    "DEPTHWISE_CONV_2D": "te_depthwise_conv2d",
    "FULLY_CONNECTED": "te_fully_connected",
    "AVERAGE_POOL_2D": "te_average_pool",
    "MAX_POOL_2D": "te_max_pool",
    "MEAN": "te_mean_hw",
    "LOGISTIC": "te_logistic",
    "SOFTMAX": "te_softmax",
    "ADD": "te_add",
    "MUL": "te_mul",
    "QUANTIZE": "te_requantize",  # te_quantize_float when its input is float32
    "DEQUANTIZE": "te_dequantize",
    "PAD": "te_pad",
    "PADV2": "te_pad",
    "CONCATENATION": "te_concat",
    "RESHAPE": "",
    "SQUEEZE": "",
    "SUB": "te_sub",
    "MAXIMUM": "te_maximum",
    "MINIMUM": "te_minimum",
    "LEAKY_RELU": "te_leaky_relu",
    "HARD_SWISH": "te_hard_swish",
    "TANH": "te_tanh",
    "RELU": "te_relu",
    "RELU6": "te_clamp",
    "STRIDED_SLICE": "te_strided_slice",
    "RESIZE_NEAREST_NEIGHBOR": "te_resize_nearest",
    "TRANSPOSE_CONV": "te_transpose_conv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "te_lstm",  # lower_lstm
}
SUPPORTED_OPS = tuple(KERNELS)

# How an op may overwrite its own input (the planner decides whether it does):
#   "elementwise": out[i] depends on in[i] only, read before it is written;
#   "pixel": a 1x1 stride-1 conv, a group of output pixels from the same input pixels (scratch:
#            the group's output bytes);
#   "rows": any other conv or depthwise conv, which first saves the input rows it needs in a ring.
INPLACE_KINDS = ("elementwise", "pixel", "rows")

# Where a model the compiled runtime cannot run may still go
TFLM_HINT = "generate it with --runtime tflm for a real board (TensorFlow Lite Micro), or change that part of the model"


@dataclasses.dataclass(frozen=True)
class ConstArray:
    name: str
    ctype: str  # int8_t, int32_t
    values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Layer:
    index: int
    op: str
    kernel: str
    struct: str  # C type of the parameter struct ("" for RESHAPE)
    fields: dict  # struct field -> int, or the name of a ConstArray
    arrays: tuple[ConstArray, ...]
    inputs: tuple[int, ...]  # tensors read: activations, or constants named in CONSTANTS
    output: int
    inplace: str = ""  # one of INPLACE_KINDS, or "" when it must not overwrite its input
    scratch_bytes: int = 0  # needed only when it runs in place
    work_bytes: int = 0  # arena bytes the kernel needs while it runs, in place or not (e.g. im2col)
    partial_ring: bool = True  # "rows": the kernel reads rows past its ring from the input (te_ring.h)
    constants: dict = dataclasses.field(default_factory=dict)  # constant input tensor -> its ConstArray name


@dataclasses.dataclass(frozen=True)
class LoweredModel:
    info: ModelInfo
    layers: tuple[Layer, ...]
    tensor_bytes: dict  # activation tensor -> bytes
    inputs: tuple[int, ...]  # the model's input tensors, in its order
    outputs: tuple[int, ...]
    path: str = "generic"  # the kernel path (tinyeff.codegen.paths) the layers were chosen for
    # variable tensors (state kept from one inference to the next): each its own static array, outside
    # the arena, holding at start-up what TFLM resets it to (an int8 tensor's zero point, else zeros)
    variables: tuple[ConstArray, ...] = ()
    variable_names: dict = dataclasses.field(default_factory=dict)  # variable tensor -> its ConstArray name

    @property
    def const_bytes(self) -> int:
        """Bytes of the constant arrays (weights, biases, requantization) the model puts in flash."""
        return sum(a.values.nbytes for layer in self.layers for a in layer.arrays)

    @property
    def state_bytes(self) -> int:
        """RAM the variable tensors take besides the arena."""
        return sum(a.values.nbytes for a in self.variables)


def _fail(info: ModelInfo, op: OpInfo, why: str) -> TinyeffError:
    return TinyeffError(f"'{info.name}' op {op.index} ({op.op}) {why}")


def _nhwc(t: TensorInfo) -> tuple[int, int, int]:
    """Height, width and channels of an NHWC tensor: check_model has refused any other rank where this is asked."""
    _, h, w, c = t.shape
    return h, w, c


# Lowering asks these of int8, int16 and int32 tensors only, each of which check_model has made carry a
# scale and a zero point (float32 ones, at QUANTIZE and DEQUANTIZE, are read for their int8 side's).
def _scale(t: TensorInfo) -> float:
    return t.scales[0]


def _zp(t: TensorInfo) -> int:
    return t.zero_points[0]


def _array(name: str, values, ctype: str) -> ConstArray:
    dtype = {"int8_t": np.int8, "int16_t": np.int16, "int32_t": np.int32, "int64_t": np.int64}[ctype]
    return ConstArray(name, ctype, np.asarray(values, dtype).reshape(-1))


def _wrap_int32(values: np.ndarray) -> np.ndarray:
    """int64 values reduced modulo 2^32 into int32, as TFLM's int32 accumulator wraps (NumPy's integer
    cast keeps the low 32 bits)."""
    return np.asarray(values, np.int64).astype(np.int32)


def _column_of_one_row(f: dict) -> dict:
    """A conv over one row of pixels (a 1-D conv: text, a signal) as the same conv over one column.
    With one row the NHWC bytes of the input, output and filter (OHWI, or 1HWO depthwise) are the
    same either way, so the kernels compute the same sums; but a conv that writes over its input
    keeps a ring of the rows its window still needs, and one row is the whole input (a 1x3 conv
    over 12 pixels of 80 channels kept 960 B beside a 960 B input), while over a column the ring
    holds the window's pixels (240 B)."""
    if f["in_h"] != 1 or f["k_h"] != 1 or f["in_w"] == 1:
        return f
    swapped = dict(f)
    for a, b in (("in_h", "in_w"), ("out_h", "out_w"), ("k_h", "k_w"), ("stride_h", "stride_w"), ("dil_h", "dil_w"),
                 ("pad_top", "pad_left")):
        swapped[a], swapped[b] = f[b], f[a]
    return swapped


class _Lowering:
    def __init__(self, data: bytes, info: ModelInfo, path: str):
        self.data, self.info, self.path = data, info, path

    def t(self, i: int) -> TensorInfo:
        return self.info.tensors[i]

    def const(self, i: int) -> np.ndarray:
        return constant_array(self.data, self.t(i))

    def act(self, op: OpInfo) -> tuple[int, int]:
        out = self.t(op.outputs[0])
        return quant.activation_range(op.options.get("fused_activation_function", "NONE"), _scale(out), _zp(out))

    def weights(self, op: OpInfo, name: str, mult, shift, in_offset: int, filter_offset: int = 0) -> tuple[list[ConstArray], dict]:
        """Filter, folded bias and requantization arrays of a conv or dense op, and the struct fields naming them.

        The bias holds in_offset * sum(w + filter_offset) per output channel on top of the op's own
        bias, so the kernels multiply raw inputs (tinyeff_kernels.h); the sum runs over every tap,
        and the kernels read the zero point at padded taps, which makes those taps add nothing."""
        w = self.const(op.inputs[1]).astype(np.int64)
        depthwise = op.op == "DEPTHWISE_CONV_2D"
        channels = w.shape[-1] if depthwise else w.shape[0]
        sums = (w + filter_offset).reshape(-1, channels).sum(axis=0) if depthwise else (w + filter_offset).reshape(channels, -1).sum(axis=1)
        has_bias = len(op.inputs) > 2 and op.inputs[2] >= 0  # check_model has made it one value per channel
        bias = self.const(op.inputs[2]).astype(np.int64).reshape(-1) if has_bias else np.zeros(channels, np.int64)
        arrays = [_array(f"{name}_filter", self.const(op.inputs[1]), "int8_t"),
                  _array(f"{name}_bias", _wrap_int32(bias + in_offset * sums), "int32_t"),
                  _array(f"{name}_mult", mult, "int32_t"), _array(f"{name}_shift", shift, "int8_t")]
        refs = dict(filter=f"{name}_filter", bias=f"{name}_bias", mult=f"{name}_mult", shift=f"{name}_shift")
        return arrays, refs

    def conv(self, op: OpInfo, name: str) -> Layer:
        x, w, out = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        depthwise = op.op == "DEPTHWISE_CONV_2D"
        ih, iw, ic = _nhwc(x)
        oh, ow, oc = _nhwc(out)
        if depthwise:
            _, kh, kw, _ = w.shape
        else:
            _, kh, kw, fic = w.shape
            if fic != ic:
                raise _fail(self.info, op, f"is a grouped convolution, which the compiled runtime does not run; {TFLM_HINT}")
        o = op.options
        sh, sw, dh, dw = o["stride_h"], o["stride_w"], o.get("dilation_h_factor", 1), o.get("dilation_w_factor", 1)
        if (quant.out_size(o["padding"], ih, kh, sh, dh), quant.out_size(o["padding"], iw, kw, sw, dw)) != (oh, ow):
            raise _fail(self.info, op, f"has output {oh}x{ow}, which its padding and strides do not give; export the model again")
        mult, shift = quant.conv_multipliers(_scale(x), w.scales, _scale(out), oc)
        lo, hi = self.act(op)
        arrays, refs = self.weights(op, name, mult, shift, -_zp(x))
        fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw,
                      stride_h=sh, stride_w=sw, dil_h=dh, dil_w=dw,
                      pad_top=quant.padding_before(o["padding"], ih, kh, sh, dh),
                      pad_left=quant.padding_before(o["padding"], iw, kw, sw, dw),
                      depth_mult=o.get("depth_multiplier", 1) if depthwise else 1,
                      in_offset=-_zp(x), out_offset=_zp(out), act_min=lo, act_max=hi,
                      **refs)
        fields = _column_of_one_row(fields)
        choice = paths.choose(self.path, op.op, fields) or paths.KernelChoice(KERNELS[op.op])
        if not depthwise and paths.is_pointwise(fields):
            inplace, scratch = "pixel", choice.pixel_group * oc
        else:
            inplace, scratch = "rows", ((kh - 1) * dh + 1) * iw * ic  # the ring of input rows
        return Layer(op.index, op.op, choice.name, "te_conv_t", fields, tuple(arrays), (op.inputs[0],),
                     op.outputs[0], inplace, scratch, choice.work_bytes, choice.partial_ring)

    def fully_connected(self, op: OpInfo, name: str) -> Layer:
        x, w, out = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        out_depth, in_depth = w.shape  # check_model has refused inputs that are not whole rows of in_depth
        if len(w.scales) > 1:
            mult, shift = quant.conv_multipliers(_scale(x), w.scales, _scale(out), out_depth)
        else:
            m, s = quant.per_tensor_multiplier(_scale(x), _scale(w), _scale(out))
            mult, shift = [m], [s]
        lo, hi = self.act(op)
        arrays, refs = self.weights(op, name, mult, shift, -_zp(x), -_zp(w))
        # the input offset is folded into the bias (weights()): the kernel never reads it
        fields = dict(rows=x.elements // in_depth, in_depth=in_depth, out_depth=out_depth, filter_offset=-_zp(w),
                      out_offset=_zp(out), act_min=lo, act_max=hi, per_channel=int(len(w.scales) > 1), **refs)
        choice = paths.choose(self.path, op.op, fields) or paths.KernelChoice(KERNELS[op.op])
        return Layer(op.index, op.op, choice.name, "te_fc_t", fields, tuple(arrays), (op.inputs[0],), op.outputs[0],
                     work_bytes=choice.work_bytes)

    def pool(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        ih, iw, c = _nhwc(x)
        oh, ow, _ = _nhwc(out)
        o = op.options
        kh, kw, sh, sw = o["filter_height"], o["filter_width"], o["stride_h"], o["stride_w"]
        if _scale(x) != _scale(out) or _zp(x) != _zp(out):
            raise _fail(self.info, op, "changes the quantization, which TFLM's int8 pooling does not allow; export the model again")
        lo, hi = self.act(op)
        fields = dict(in_h=ih, in_w=iw, c=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                      pad_top=quant.padding_before(o["padding"], ih, kh, sh, 1),
                      pad_left=quant.padding_before(o["padding"], iw, kw, sw, 1), act_min=lo, act_max=hi)
        return Layer(op.index, op.op, KERNELS[op.op], "te_pool_t", fields, (), (op.inputs[0],), op.outputs[0])

    def mean(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        axes = sorted(int(a) % 4 for a in self.const(op.inputs[1]).reshape(-1)) if len(x.shape) == 4 else []
        if axes != [1, 2]:
            raise _fail(self.info, op, "averages over axes other than height and width of an NHWC tensor, which the compiled "
                        f"runtime does not run; {TFLM_HINT}")
        h, w, c = _nhwc(x)
        mult, shift = quant.mean_multiplier(_scale(x), _scale(out), h * w)
        fields = dict(h=h, w=w, c=c, in_zp=_zp(x), out_zp=_zp(out), mult=mult, shift=shift)
        return Layer(op.index, op.op, KERNELS[op.op], "te_mean_t", fields, (), (op.inputs[0],), op.outputs[0])

    def logistic(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        if _zp(out) != -128:
            raise _fail(self.info, op, "has an output zero point other than -128, which TFLM's int8 logistic requires; export the model again")
        try:
            mult, left_shift, radius = quant.logistic_params(_scale(x))
        except ValueError as e:
            raise _fail(self.info, op, f"cannot run: {e}") from None
        fields = dict(size=x.elements, in_zp=_zp(x), radius=radius, mult=mult, left_shift=left_shift)
        return Layer(op.index, op.op, KERNELS[op.op], "te_logistic_t", fields, (), (op.inputs[0],), op.outputs[0], "elementwise")

    def softmax(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        if _zp(out) != -128 or np.float32(_scale(out)) != np.float32(1 / 256):
            raise _fail(self.info, op, "has an output quantization other than scale 1/256, zero point -128, which TFLM's int8 softmax requires")
        # check_model has refused a softmax without beta (TFLM's would be 0) or with one TFLM cannot run
        mult, left_shift, diff_min = quant.softmax_params(op.options["beta"], _scale(x))
        depth = x.shape[-1]
        fields = dict(rows=x.elements // depth, depth=depth, in_mult=mult, in_left_shift=left_shift, diff_min=diff_min)
        return Layer(op.index, op.op, KERNELS[op.op], "te_softmax_t", fields, (), (op.inputs[0],), op.outputs[0], "elementwise")

    def binary(self, op: OpInfo, name: str) -> Layer:
        a, b, out = self.t(op.inputs[0]), self.t(op.inputs[1]), self.t(op.outputs[0])
        # a constant operand (a scale or an offset the converter folded) stays in flash
        constants = {t.index: f"{name}_const{k}" for k, t in enumerate((a, b)) if t.constant}
        arrays = tuple(_array(constants[t.index], self.const(t.index), "int8_t") for t in (a, b) if t.constant)

        def period(t: TensorInfo) -> int:
            if t.elements == out.elements:
                return out.elements
            shape = tuple(t.shape)
            while shape and shape[0] == 1:
                shape = shape[1:]
            if tuple(out.shape[len(out.shape) - len(shape):]) != shape:
                raise _fail(self.info, op, f"broadcasts {t.shape} to {out.shape} in a way the compiled runtime does not run; {TFLM_HINT}")
            return t.elements

        lo, hi = self.act(op)
        # each kernel's own fields: the struct's designated initializer leaves the rest zero (MAXIMUM and
        # MINIMUM compare codes, MUL rescales the product only)
        fields = dict(size=out.elements, a_period=period(a), b_period=period(b), a_offset=-_zp(a), b_offset=-_zp(b),
                      out_offset=_zp(out), act_min=lo, act_max=hi)
        if op.op in ("ADD", "SUB"):  # the same rescaling (SUB subtracts b's term)
            (am, ash), (bm, bsh), (om, osh) = quant.add_multipliers(_scale(a), _scale(b), _scale(out))
            fields.update(left_shift=quant.ADD_LEFT_SHIFT, a_mult=am, a_shift=ash, b_mult=bm, b_shift=bsh, out_mult=om, out_shift=osh)
        elif op.op == "MUL":
            om, osh = quant.quantize_multiplier(float(_scale(a)) * float(_scale(b)) / float(_scale(out)))
            fields.update(out_mult=om, out_shift=osh)
        return Layer(op.index, op.op, KERNELS[op.op], "te_binary_t", fields, arrays, (op.inputs[0], op.inputs[1]),
                     op.outputs[0], "elementwise", constants=constants)

    def requantize(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        if x.dtype == "FLOAT32" and out.dtype == "INT8":
            return self._float_quant(op, out, "te_quantize_float")
        # every other pair is refused by check_compilable or has an int16 or int32 side (lower_int16): int8 to int8 here
        m, s = quant.quantize_multiplier(float(_scale(x)) / float(_scale(out)))
        fields = dict(size=out.elements, in_zero_point=_zp(x), out_zero_point=_zp(out), mult=m, shift=s)
        return Layer(op.index, op.op, KERNELS[op.op], "te_requantize_t", fields, (), (op.inputs[0],), op.outputs[0], "elementwise")

    def dequantize(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        if x.dtype != "INT8" or out.dtype != "FLOAT32" or len(x.scales) != 1:
            raise _fail(self.info, op, f"converts {x.dtype.lower()} to {out.dtype.lower()}; the compiled runtime "
                        f"dequantizes per-tensor int8 to float32 only; {TFLM_HINT}")
        return self._float_quant(op, x, "te_dequantize")

    def _float_quant(self, op: OpInfo, q: TensorInfo, kernel: str) -> Layer:
        """QUANTIZE float32 -> int8 or DEQUANTIZE int8 -> float32, with Q the int8 side's quantization."""
        # A C99 hex float literal carries the .tflite's float32 scale without any decimal rounding.
        fields = dict(size=q.elements, zero_point=_zp(q), scale=float(np.float32(_scale(q))).hex() + "f")
        return Layer(op.index, op.op, kernel, "te_float_quant_t", fields, (), (op.inputs[0],), op.outputs[0])

    def pad(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        pads = self.const(op.inputs[1]).reshape(-1, 2)
        if len(x.shape) != 4:  # (check_model holds the paddings to one row per axis)
            raise _fail(self.info, op, f"pads a tensor that is not 4-D; the compiled runtime pads NHWC tensors only; {TFLM_HINT}")
        value = _zp(out)
        if len(op.inputs) > 2 and op.inputs[2] >= 0:  # PADV2's constant
            value = int(self.const(op.inputs[2]).reshape(-1)[0])
        fields = dict(in_dims="{" + ", ".join(map(str, x.shape)) + "}", out_dims="{" + ", ".join(map(str, out.shape)) + "}",
                      before="{" + ", ".join(str(int(p)) for p in pads[:, 0]) + "}", pad_value=value)
        return Layer(op.index, op.op, KERNELS[op.op], "te_pad_t", fields, (), (op.inputs[0],), op.outputs[0])

    def concat(self, op: OpInfo, name: str) -> Layer:
        out = self.t(op.outputs[0])
        ins = [self.t(i) for i in op.inputs]
        if any((_scale(t), _zp(t)) != (_scale(out), _zp(out)) for t in ins):
            raise _fail(self.info, op, "concatenates tensors of different quantization; export the model again")
        axis = op.options.get("axis", 0) % len(out.shape)  # the schema's default, as check_model reads it
        outer = int(np.prod(out.shape[:axis])) if axis else 1
        blocks = [t.elements // outer for t in ins]
        arrays = (_array(f"{name}_block", blocks, "int32_t"),)
        fields = dict(outer=outer, n=len(ins), block=f"{name}_block")
        return Layer(op.index, op.op, KERNELS[op.op], "", fields, arrays, tuple(op.inputs), op.outputs[0])

    def reshape(self, op: OpInfo, name: str) -> Layer:
        return Layer(op.index, op.op, "", "", {}, (), (op.inputs[0],), op.outputs[0])

    def _elementwise(self, op: OpInfo, struct: str, fields: dict) -> Layer:
        """A one-input activation that may run in place."""
        return Layer(op.index, op.op, KERNELS[op.op], struct, fields, (), (op.inputs[0],), op.outputs[0], "elementwise")

    def leaky_relu(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        (am, ash), (im, ish) = quant.leaky_relu_multipliers(_scale(x), op.options.get("alpha", 0.0), _scale(out))
        if am == -(1 << 31):  # TFLM would negate it in int32
            raise _fail(self.info, op, f"has alpha {op.options.get('alpha')!r}, whose multiplier TFLM cannot negate; export the model again")
        fields = dict(size=x.elements, in_zp=_zp(x), out_zp=_zp(out), alpha_mult=abs(am), alpha_shift=ash,
                      alpha_negate=int(am < 0), identity_mult=im, identity_shift=ish)
        return self._elementwise(op, "te_leaky_relu_t", fields)

    def hard_swish(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        om, oe, rm, re_ = quant.hard_swish_params(_scale(x), _scale(out))
        fields = dict(size=x.elements, in_zp=_zp(x), out_zp=_zp(out), out_mult=om, out_exp=oe, reluish_mult=rm, reluish_exp=re_)
        return self._elementwise(op, "te_hard_swish_t", fields)

    def tanh(self, op: OpInfo, name: str) -> Layer:
        x = self.t(op.inputs[0])
        mult, left_shift, radius = quant.tanh_params(_scale(x))  # check_model refuses the scales it cannot take
        return self._elementwise(op, "te_logistic_t", dict(size=x.elements, in_zp=_zp(x), radius=radius, mult=mult, left_shift=left_shift))

    def relu(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        mult, shift, lo, hi = quant.relu_params(_scale(x), _scale(out), _zp(out))
        fields = dict(size=x.elements, in_zp=_zp(x), out_zp=_zp(out), mult=mult, shift=shift, act_min=lo, act_max=hi)
        return self._elementwise(op, "te_relu_t", fields)

    def relu6(self, op: OpInfo, name: str) -> Layer:
        x = self.t(op.inputs[0])
        lo, hi = quant.relu6_bounds(_scale(x), _zp(x))
        return self._elementwise(op, "te_clamp_t", dict(size=x.elements, lo=lo, hi=hi))

    def strided_slice(self, op: OpInfo, name: str) -> Layer:
        x = self.t(op.inputs[0])
        begin, end, strides = (self.const(i).reshape(-1) for i in op.inputs[1:4])
        o = op.options
        axes = indexing.slice_axes(x.shape, begin, end, strides, o.get("begin_mask", 0), o.get("end_mask", 0),
                                   o.get("shrink_axis_mask", 0))
        pad = 4 - len(axes)  # leading axes of 1, one element each
        axes = [indexing.SliceAxis(0, 1, 1)] * pad + axes

        def braced(values) -> str:
            return "{" + ", ".join(str(int(v)) for v in values) + "}"

        fields = dict(in_dims=braced((1,) * pad + tuple(x.shape)), start=braced(a.start for a in axes),
                      stride=braced(a.stride for a in axes), count=braced(a.count for a in axes))
        return Layer(op.index, op.op, KERNELS[op.op], "te_slice_t", fields, (), (op.inputs[0],), op.outputs[0])

    def resize_nearest(self, op: OpInfo, name: str) -> Layer:
        x, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        _, ih, iw, c = x.shape
        _, oh, ow, _ = out.shape
        corners, centers = bool(op.options.get("align_corners", False)), bool(op.options.get("half_pixel_centers", False))
        arrays = (_array(f"{name}_src_y", indexing.nearest_sources(ih, oh, corners, centers), "int32_t"),
                  _array(f"{name}_src_x", indexing.nearest_sources(iw, ow, corners, centers), "int32_t"))
        fields = dict(in_w=iw, c=c, out_h=oh, out_w=ow, src_y=f"{name}_src_y", src_x=f"{name}_src_x")
        return Layer(op.index, op.op, KERNELS[op.op], "te_resize_t", fields, arrays, (op.inputs[0],), op.outputs[0])

    def transpose_conv(self, op: OpInfo, name: str) -> Layer:
        # inputs: output shape, filter (OHWI), input, optional bias
        w, x, out = self.t(op.inputs[1]), self.t(op.inputs[2]), self.t(op.outputs[0])
        _, ih, iw, ic = x.shape
        _, oh, ow, oc = out.shape
        _, kh, kw, _ = w.shape
        o = op.options
        sh, sw = o["stride_h"], o["stride_w"]
        mult, shift = quant.conv_multipliers(_scale(x), w.scales, _scale(out), oc)
        has_bias = len(op.inputs) > 3 and op.inputs[3] >= 0
        bias = self.const(op.inputs[3]).reshape(-1) if has_bias else np.zeros(oc, np.int32)
        lo, hi = self.act(op)
        arrays = (_array(f"{name}_filter", self.const(op.inputs[1]), "int8_t"), _array(f"{name}_bias", bias, "int32_t"),
                  _array(f"{name}_mult", mult, "int32_t"), _array(f"{name}_shift", shift, "int8_t"))
        # TFLM pads as a conv over the output would: the output's size takes the conv input's place
        fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh, stride_w=sw,
                      pad_top=quant.padding_before(o["padding"], oh, kh, sh, 1),
                      pad_left=quant.padding_before(o["padding"], ow, kw, sw, 1),
                      in_offset=-_zp(x), out_offset=_zp(out), act_min=lo, act_max=hi,
                      filter=f"{name}_filter", bias=f"{name}_bias", mult=f"{name}_mult", shift=f"{name}_shift")
        return Layer(op.index, op.op, KERNELS[op.op], "te_transpose_conv_t", fields, arrays, (op.inputs[2],), op.outputs[0])


def _lstm(low: _Lowering, op: OpInfo, name: str) -> Layer:
    from tinyeff.codegen import lower_lstm  # it builds on this module

    return lower_lstm.lower_op(low, op, name)


_LOWER = {
    "CONV_2D": _Lowering.conv, "DEPTHWISE_CONV_2D": _Lowering.conv, "FULLY_CONNECTED": _Lowering.fully_connected,
    "AVERAGE_POOL_2D": _Lowering.pool, "MAX_POOL_2D": _Lowering.pool, "SOFTMAX": _Lowering.softmax, "MEAN": _Lowering.mean, "LOGISTIC": _Lowering.logistic,
    "ADD": _Lowering.binary, "MUL": _Lowering.binary, "QUANTIZE": _Lowering.requantize, "DEQUANTIZE": _Lowering.dequantize, "PAD": _Lowering.pad,
    "PADV2": _Lowering.pad, "CONCATENATION": _Lowering.concat, "RESHAPE": _Lowering.reshape,
    "SQUEEZE": _Lowering.reshape, "SUB": _Lowering.binary, "MAXIMUM": _Lowering.binary, "MINIMUM": _Lowering.binary,
    "LEAKY_RELU": _Lowering.leaky_relu, "HARD_SWISH": _Lowering.hard_swish, "TANH": _Lowering.tanh, "RELU": _Lowering.relu,
    "RELU6": _Lowering.relu6, "STRIDED_SLICE": _Lowering.strided_slice, "RESIZE_NEAREST_NEIGHBOR": _Lowering.resize_nearest,
    "TRANSPOSE_CONV": _Lowering.transpose_conv, "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
}

_ITEMSIZE = {"INT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4}
_CTYPE = {"INT8": "int8_t", "INT16": "int16_t", "INT32": "int32_t", "FLOAT32": "float"}
_NUMPY = {"INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "FLOAT32": np.float32}


def check_compilable(info: ModelInfo) -> None:
    """One sentence for whatever keeps MODEL from the compiled runtime: ops, subgraphs, shapes, types."""
    unsupported = sorted({o.op for o in info.ops} - set(_LOWER))
    if unsupported:
        raise TinyeffError(
            f"'{info.name}' uses {', '.join(unsupported)}, which the compiled runtime does not support "
            f"(it runs {', '.join(SUPPORTED_OPS)}); {TFLM_HINT}"
        )
    if info.subgraphs != 1:
        raise TinyeffError(f"'{info.name}' has {info.subgraphs} subgraphs; the compiled runtime runs models of one subgraph; {TFLM_HINT}")
    if not info.inputs or not info.outputs:
        raise TinyeffError(f"'{info.name}' has {len(info.inputs)} inputs and {len(info.outputs)} outputs; a model needs at least one of each")
    io = [*info.inputs, *info.outputs]
    if len(set(io)) != len(io) or any(info.tensors[i].constant for i in io):
        raise TinyeffError(f"'{info.name}' lists a tensor twice among its inputs and outputs, or a constant as one; export the model again")
    # tensors no op reads or writes (an LSTM's intermediates, which carry only quantization) are not activations
    used = {i for o in info.ops for i in (*o.inputs, *o.outputs) if i >= 0} | set(io)
    for t in info.tensors:
        if t.constant or t.index not in used:
            continue
        if any(d < 1 for d in t.shape):
            raise TinyeffError(f"'{info.name}' tensor {t.index} has a dynamic shape {t.shape}; export the model with every size fixed (a batch of 1)")
        if t.shape and len(t.shape) >= 2 and t.shape[0] != 1:
            raise TinyeffError(f"'{info.name}' tensor {t.index} has batch {t.shape[0]}; export the model with a batch of 1")
        if t.dtype == "FLOAT32" and float_boundary(info, t.index):
            continue
        if t.dtype == "INT32" and _int32_side(info, t.index):
            continue
        if t.dtype not in ("INT8", "INT16"):  # int16: TFLM's 16x8 (lower_int16)
            raise TinyeffError(f"'{info.name}' activation tensor {t.index} is {t.dtype.lower()}; the compiled runtime runs int8 "
                               "and int16 models (float32 only as the model's input into QUANTIZE or its output from DEQUANTIZE, "
                               "int32 only into or out of QUANTIZE)")


def _int32_side(info: ModelInfo, tensor: int) -> bool:
    """Is TENSOR an int32 activation the compiled runtime holds: written and read only by QUANTIZE, or
    read only as a transposed conv's output shape (which TFLM, and so the compiled runtime, ignores)?"""
    readers = [(o.op, k) for o in info.ops for k, i in enumerate(o.inputs) if i == tensor]
    writers = [o.op for o in info.ops if tensor in o.outputs]
    return all(op == "QUANTIZE" or (op, k) == ("TRANSPOSE_CONV", 0) for op, k in readers) and \
        all(op == "QUANTIZE" for op in writers)


def lower(data: bytes, info: ModelInfo, path: str = "generic") -> LoweredModel:
    """Every op of INFO as a Layer for kernel PATH, with TFLM's prepared parameters; bad models raise TinyeffError."""
    check_compilable(info)
    check_model(data, info)
    from tinyeff.codegen import lower_int16  # it builds on this module

    low = _Lowering(data, info, path)
    layers = []
    for op in info.ops:
        try:
            # an LSTM's int16 cell state is its state, not an int16 activation: lower_lstm takes the whole op
            int16 = lower_int16.is_int16(info, op) and op.op != "UNIDIRECTIONAL_SEQUENCE_LSTM"
            lowering = lower_int16.lower_op if int16 else _LOWER[op.op]
            layers.append(lowering(low, op, f"l{op.index}"))
        except (KeyError, ValueError, IndexError) as e:
            raise _fail(info, op, f"has parameters the compiled runtime cannot read ({e!r}); export the model again") from None
    used = {i for op in info.ops for i in (*op.inputs, *op.outputs) if i >= 0} | set(info.inputs) | set(info.outputs)
    variables = [info.tensors[i] for i in sorted(used) if info.tensors[i].variable]
    sizes = {i: info.tensors[i].elements * _ITEMSIZE[info.tensors[i].dtype] for i in sorted(used)
             if not info.tensors[i].constant and not info.tensors[i].variable}
    # TFLM resets a variable tensor when it allocates, ignoring any data the file holds for it: an int8
    # one to its zero point in every byte, any other to zeros
    states = tuple(ConstArray(f"te_state{t.index}", _CTYPE[t.dtype],
                              np.full(t.elements, _zp(t) if t.dtype == "INT8" else 0, _NUMPY[t.dtype]))
                   for t in variables)
    return LoweredModel(info, tuple(layers), sizes, tuple(info.inputs), tuple(info.outputs), path,
                        states, {t.index: a.name for t, a in zip(variables, states)})
