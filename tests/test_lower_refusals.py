"""Lowering's refusals: a model the compiled runtime cannot run, which check_model lets through, is
refused by check_compilable, lower.py or lower_int16.py in one exact sentence.

Each case is a small model written with the tflite schema (no TensorFlow), consistent in every
respect check_model checks and wrong in the one the refusal names; CONTROLS are the same models
made right, which compile. Refusals in lowering that check_model always makes first (a bias of
the wrong length, say) cannot be reached through compile_model and have no case here.
"""

from __future__ import annotations

import numpy as np
import pytest

from schema_models import T, const, model, unary
from tinyeff.cli import main
from tinyeff.codegen import compile_model
from tinyeff.codegen.lower import SUPPORTED_OPS
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model

HINT = "generate it with --runtime tflm for a real board (TensorFlow Lite Micro), or change that part of the model"
REEXPORT = "export the model again"
ACTIVATIONS = ("the compiled runtime runs int8 and int16 models (float32 only as the model's input into QUANTIZE or its "
               "output from DEQUANTIZE, int32 only into or out of QUANTIZE)")


def conv(dtype: str, scale: float, in_c: int, filter_c: int, bias: str) -> bytes:
    """A 3x3 SAME conv from 1x4x4xIN_C to six channels, its filter reading FILTER_C input channels."""
    w = const(np.arange(6 * 9 * filter_c).reshape(6, 3, 3, filter_c) % 7 - 3, "INT8")
    return unary("CONV_2D", T((1, 4, 4, in_c), dtype, (scale, 0)), T((1, 4, 4, 6), dtype, (2 * scale, 0)),
                 dict(strideW=1, strideH=1), w, const(np.arange(6) - 3, bias))


def pool(op: str, dtype: str, x_q: tuple[float, int], out_q: tuple[float, int]) -> bytes:
    """A 2x2 stride-2 pool of 1x4x4x3."""
    return unary(op, T((1, 4, 4, 3), dtype, x_q), T((1, 2, 2, 3), dtype, out_q),
                 dict(padding=1, strideW=2, strideH=2, filterWidth=2, filterHeight=2))


def add(dtype: str, scale: float, a_shape: tuple[int, ...]) -> bytes:
    """ADD of model inputs of A_SHAPE and 1x6x5x4."""
    tensors = [T(a_shape, dtype, (scale, 0)), T((1, 6, 5, 4), dtype, (scale, 0)), T((1, 6, 5, 4), dtype, (2 * scale, 0))]
    return model(tensors, [("ADD", [0, 1], [2], {})], [0, 1], [2])


def pad3d(dtype: str, scale: float) -> bytes:
    """PAD of a 1x4x3 tensor by one row each side."""
    return unary("PAD", T((1, 4, 3), dtype, (scale, 0)), T((1, 6, 3), dtype, (scale, 0)), {},
                 const([[0, 0], [1, 1], [0, 0]]))


def relu(x: T, out: T, **graph) -> bytes:
    """RELU from X to OUT, the model's input and output unless GRAPH names others (inputs, outputs,
    subgraphs); tensor 2 is an int8 constant no op reads."""
    graph = {"inputs": [0], "outputs": [1], **graph}
    return model([x, out, const([1, 2], "INT8")], [("RELU", [0], [1], {})], **graph)


# The input scale is the float32 just above 1/128, alpha the float32 just above -1 and the output scale
# 1/128: alpha's multiplier is -(1 - 2^-46), whose Q31 form rounds to -2^31, which has no negation in int32.
_ALPHA = float(np.float32(-(1 - 2.0**-23)))
_STEEP = unary("LEAKY_RELU", T((1, 8), q=((1 + 2.0**-23) / 128, 0)), T((1, 8), q=(1 / 128, 0)), dict(alpha=_ALPHA))

INT8, INT16 = 0.1, 0.001  # activation scales: int16 ones symmetric (zero point 0), as TFLM's 16x8 ops need

REFUSALS = {
    # lower.py
    "grouped_conv": (lambda: conv("INT8", INT8, 4, 2, "INT32"),
                     f"op 0 (CONV_2D) is a grouped convolution, which the compiled runtime does not run; {HINT}"),
    "pool_scale": (lambda: pool("AVERAGE_POOL_2D", "INT8", (0.1, 0), (0.2, 0)),
                   f"op 0 (AVERAGE_POOL_2D) changes the quantization, which TFLM's int8 pooling does not allow; {REEXPORT}"),
    "pool_zero_point": (lambda: pool("MAX_POOL_2D", "INT8", (0.1, 0), (0.1, 5)),
                        f"op 0 (MAX_POOL_2D) changes the quantization, which TFLM's int8 pooling does not allow; {REEXPORT}"),
    "mean_over_h": (lambda: unary("MEAN", T((1, 4, 1, 3)), T((1, 1, 3)), {}, const([1])),
                    "op 0 (MEAN) averages over axes other than height and width of an NHWC tensor, which the compiled "
                    f"runtime does not run; {HINT}"),
    "mean_of_3d": (lambda: unary("MEAN", T((1, 4, 3)), T((1, 3)), {}, const([1])),
                   "op 0 (MEAN) averages over axes other than height and width of an NHWC tensor, which the compiled "
                   f"runtime does not run; {HINT}"),
    "logistic_zero_point": (lambda: unary("LOGISTIC", T((1, 8)), T((1, 8), q=(1 / 256, 0))),
                            "op 0 (LOGISTIC) has an output zero point other than -128, which TFLM's int8 logistic requires; " + REEXPORT),
    "softmax_zero_point": (lambda: unary("SOFTMAX", T((1, 10)), T((1, 10), q=(1 / 256, 0)), dict(beta=1.0)),
                           "op 0 (SOFTMAX) has an output quantization other than scale 1/256, zero point -128, which "
                           "TFLM's int8 softmax requires"),
    "softmax_scale": (lambda: unary("SOFTMAX", T((1, 10)), T((1, 10), q=(1 / 128, -128)), dict(beta=1.0)),
                      "op 0 (SOFTMAX) has an output quantization other than scale 1/256, zero point -128, which "
                      "TFLM's int8 softmax requires"),
    "broadcast": (lambda: add("INT8", INT8, (1, 6, 1, 4)),
                  f"op 0 (ADD) broadcasts (1, 6, 1, 4) to (1, 6, 5, 4) in a way the compiled runtime does not run; {HINT}"),
    "dequantize_to_int8": (lambda: unary("DEQUANTIZE", T((1, 8)), T((1, 8))),
                           "op 0 (DEQUANTIZE) converts int8 to int8; the compiled runtime dequantizes per-tensor int8 to "
                           f"float32 only; {HINT}"),
    "pad_3d": (lambda: pad3d("INT8", INT8),
               "op 0 (PAD) pads a tensor that is not 4-D; the compiled runtime pads NHWC tensors only; " + HINT),
    "concat_quantization": (lambda: model([T((1, 4, 2)), T((1, 4, 3), q=(0.2, 0)), T((1, 4, 5))],
                                          [("CONCATENATION", [0, 1], [2], dict(axis=2))], [0, 1], [2]),
                            f"op 0 (CONCATENATION) concatenates tensors of different quantization; {REEXPORT}"),
    # no options table: TFLM's beta is 0 (its params are zeroed), and its int8 softmax aborts on that
    "softmax_without_options": (lambda: unary("SOFTMAX", T((1, 10)), T((1, 10), q=(1 / 256, -128)), None),
                                "op 0 (SOFTMAX) has beta 0.0; softmax's beta must be finite and positive, " + REEXPORT),
    "logistic_fine_input": (lambda: unary("LOGISTIC", T((1, 8), q=(1e-9, 0)), T((1, 8), q=(1 / 256, -128))),
                            f"op 0 (LOGISTIC) cannot run: input scale {float(np.float32(1e-9))} is outside what TFLM's int8 "
                            "logistic handles"),
    # one axis, written as a scalar rather than a list of one
    "mean_scalar_axis": (lambda: unary("MEAN", T((1, 1, 1, 3)), T((1, 1, 1, 3)), dict(keepDims=True), const(1)),
                         "op 0 (MEAN) averages over axes other than height and width of an NHWC tensor, which the compiled "
                         f"runtime does not run; {HINT}"),
    "mean_of_3d_over_two_axes": (lambda: unary("MEAN", T((1, 4, 3)), T((1,)), {}, const([1, 2])),
                                 "op 0 (MEAN) averages over axes other than height and width of an NHWC tensor, which the "
                                 f"compiled runtime does not run; {HINT}"),
    "leaky_relu_alpha": (lambda: _STEEP,
                         f"op 0 (LEAKY_RELU) has alpha {_ALPHA!r}, whose multiplier TFLM cannot negate; {REEXPORT}"),
    # check_compilable
    "two_subgraphs": (lambda: relu(T((1, 8)), T((1, 8)), subgraphs=2),
                      f"has 2 subgraphs; the compiled runtime runs models of one subgraph; {HINT}"),
    "no_input": (lambda: relu(T((1, 8)), T((1, 8)), inputs=[]),
                 "has 0 inputs and 1 outputs; a model needs at least one of each"),
    "no_output": (lambda: relu(T((1, 8)), T((1, 8)), outputs=[]),
                  "has 1 inputs and 0 outputs; a model needs at least one of each"),
    "input_as_output": (lambda: relu(T((1, 8)), T((1, 8)), outputs=[1, 0]),
                        f"lists a tensor twice among its inputs and outputs, or a constant as one; {REEXPORT}"),
    "constant_output": (lambda: relu(T((1, 8)), T((1, 8)), outputs=[1, 2]),
                        f"lists a tensor twice among its inputs and outputs, or a constant as one; {REEXPORT}"),
    "dynamic_batch": (lambda: relu(T((-1, 8)), T((-1, 8))),
                      "tensor 0 has a dynamic shape (-1, 8); export the model with every size fixed (a batch of 1)"),
    "batch_2": (lambda: relu(T((2, 8)), T((2, 8))), "tensor 0 has batch 2; export the model with a batch of 1"),
    "float_activation": (lambda: relu(T((1, 8), "FLOAT32", None), T((1, 8))), f"activation tensor 0 is float32; {ACTIVATIONS}"),
    "int32_activation": (lambda: relu(T((1, 8)), T((1, 8), "INT32", None)), f"activation tensor 1 is int32; {ACTIVATIONS}"),
    # between two ops, numbered 0: checked as every tensor an op reads or writes is, not only the model's ends
    "int32_between_ops": (lambda: model([T((1, 8), "INT32", None), T((1, 8)), T((1, 8))],
                                        [("RELU", [1], [0], {}), ("RELU", [0], [2], {})], [1], [2]),
                          f"activation tensor 0 is int32; {ACTIVATIONS}"),
    # ... and after a constant, which is passed over
    "int32_after_a_constant": (lambda: model([const([1, 2], "INT8"), T((1, 8), "INT32", None), T((1, 8)), T((1, 8))],
                                             [("RELU", [2], [1], {}), ("RELU", [1], [3], {})], [2], [3]),
                               f"activation tensor 1 is int32; {ACTIVATIONS}"),
    "two_unknown_ops": (lambda: model([T((1, 8)), T((1, 8)), T((1, 8))], [("ABS", [0], [1], {}), ("COS", [1], [2], {})], [0], [2]),
                        f"uses ABS, COS, which the compiled runtime does not support (it runs {', '.join(SUPPORTED_OPS)}); {HINT}"),
    # an int32 side of a QUANTIZE carries the scale the requantization needs
    "int32_into_quantize_unscaled": (lambda: unary("QUANTIZE", T((1, 8), "INT32", None), T((1, 8))),
                                     "op 0 (QUANTIZE) has the int32 tensor 0 (t0) without one finite positive quantization "
                                     "scale and one zero point; convert the model with a representative dataset (the 16x8 ops set)"),
    "int32_out_of_quantize_unscaled": (lambda: unary("QUANTIZE", T((1, 8), "INT16", (INT16, 0)), T((1, 8), "INT32", (0.0, 0))),
                                       "op 0 (QUANTIZE) has the int32 tensor 1 (t1) without one finite positive quantization "
                                       "scale and one zero point; convert the model with a representative dataset (the 16x8 ops set)"),
    # lower_int16.py
    "int16_grouped_conv": (lambda: conv("INT16", INT16, 4, 2, "INT64"),
                           f"op 0 (CONV_2D) is a grouped convolution, which the compiled runtime does not run; {HINT}"),
    "int16_pool_scale": (lambda: pool("AVERAGE_POOL_2D", "INT16", (INT16, 0), (2 * INT16, 0)),
                         f"op 0 (AVERAGE_POOL_2D) changes the quantization, which TFLM's int16 pooling does not allow; "
                         f"{REEXPORT}"),
    "int16_broadcast": (lambda: add("INT16", INT16, (1, 6, 1, 4)),
                        f"op 0 (ADD) broadcasts (1, 6, 1, 4) to (1, 6, 5, 4) in a way the compiled runtime does not run; {HINT}"),
    "int16_pad_3d": (lambda: pad3d("INT16", INT16),
                     "op 0 (PAD) pads a tensor that is not 4-D; the compiled runtime pads NHWC tensors only; " + HINT),
}


@pytest.mark.parametrize("what", REFUSALS)
def test_compile_model_refuses_in_one_exact_sentence(what):
    make, why = REFUSALS[what]
    data = make()
    with pytest.raises(TinyeffError) as e:
        compile_model(data, read_model(data, what), "refused")
    assert str(e.value) == f"'{what}' {why}"


# each refusal's model with the one thing it names made right, which compiles: the refusals above
# come from what their cases name, not from something else the schema-written models lack
CONTROLS = {
    "conv": lambda: conv("INT8", INT8, 2, 2, "INT32"),
    "int16_conv": lambda: conv("INT16", INT16, 2, 2, "INT64"),
    "pool": lambda: pool("AVERAGE_POOL_2D", "INT8", (0.1, 3), (0.1, 3)),
    "int16_pool": lambda: pool("MAX_POOL_2D", "INT16", (INT16, 0), (INT16, 0)),
    "mean": lambda: unary("MEAN", T((1, 4, 2, 3)), T((1, 1, 1, 3)), dict(keepDims=True), const([1, 2])),
    # axes counted from the end (-3, -2 are height and width of NHWC)
    "mean_negative_axes": lambda: unary("MEAN", T((1, 4, 2, 3)), T((1, 1, 1, 3)), dict(keepDims=True), const([-3, -2])),
    "softmax": lambda: unary("SOFTMAX", T((1, 10)), T((1, 10), q=(1 / 256, -128)), dict(beta=1.0)),
    "logistic": lambda: unary("LOGISTIC", T((1, 8)), T((1, 8), q=(1 / 256, -128))),
    "broadcast": lambda: add("INT8", INT8, (1, 1, 5, 4)),
    "int16_broadcast": lambda: add("INT16", INT16, (1, 1, 5, 4)),
    "pad": lambda: unary("PAD", T((1, 4, 3, 2)), T((1, 6, 3, 2)), {}, const([[0, 0], [1, 1], [0, 0], [0, 0]])),
    "concat": lambda: model([T((1, 4, 2)), T((1, 4, 3)), T((1, 4, 5))], [("CONCATENATION", [0, 1], [2], dict(axis=2))], [0, 1], [2]),
    "leaky_relu": lambda: unary("LEAKY_RELU", T((1, 8), q=((1 + 2.0**-23) / 128, 0)), T((1, 8), q=(1 / 128, 0)),
                                dict(alpha=-0.5)),
    "relu": lambda: relu(T((1, 8)), T((1, 8))),
}


@pytest.mark.parametrize("what", CONTROLS)
def test_the_same_models_made_right_compile(what):
    data = CONTROLS[what]()
    compile_model(data, read_model(data, what), "control")


@pytest.mark.parametrize("what", ["batch_2", "pool_scale"])
def test_generate_refuses_in_one_line_and_writes_nothing(what, tmp_path, capsys):
    """Through the CLI with --runtime compiled (auto would fall back to TFLM): exit code 2, the sentence
    on stderr, no project directory."""
    make, why = REFUSALS[what]
    path = tmp_path / f"{what}.tflite"
    path.write_bytes(make())
    out = tmp_path / "project"
    rc = main(["generate", str(path), "--board", "qemu-mps2-an386", "--runtime", "compiled", "--out", str(out)])
    assert (rc, capsys.readouterr().err) == (2, f"tinyeff: error: '{path}' {why}\n")
    assert not out.exists()
