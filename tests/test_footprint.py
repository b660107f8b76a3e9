import os

import numpy as np
import pytest

from tinyeff.cli import main
from tinyeff.errors import TinyeffError
from tinyeff.footprint import host_tflm_arena, load_model_file, read_model, require_quantized

KWS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")


def test_kws_reference_model_is_read_and_measured(kws_model):
    data, info = load_model_file(kws_model)
    require_quantized(info)
    assert info.op_names == KWS_OPS
    assert info.input().shape == (1, 49, 10, 1) and info.output().shape == (1, 12)
    # DS-CNN KWS: conv 10x4 (1->64) on 25x5, four separable blocks of 64, dense 64->12
    assert info.macs == 25 * 5 * 64 * 40 + 4 * (25 * 5 * 64 * 9 + 25 * 5 * 64 * 64) + 64 * 12
    assert host_tflm_arena(data, "model").total == 24272  # the figure DESIGN.md measured with tflite-micro


def test_inspect_cli_reports_kws_arena(kws_model, capsys):
    assert main(["inspect", str(kws_model), "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["arena_bytes"] == 24272 and report["arena_head_bytes"] == 16000
    assert list(report["op_counts"]) == list(KWS_OPS) and report["flash_bytes"] == 53936


@pytest.mark.parametrize("cut", [8, 1000, 30000, 53000])
def test_truncated_model_is_one_clear_error(kws_model, cut):
    data = kws_model.read_bytes()[:cut]
    with pytest.raises(TinyeffError, match="truncated or corrupt"):
        read_model(data, "cut.tflite")


def test_not_a_tflite_file(tmp_path, capsys):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"hello world, not a model")
    assert main(["inspect", str(p)]) == 2
    err = capsys.readouterr().err
    assert "no TFL3 flatbuffer identifier" in err and err.count("\n") == 1


def test_float_model_is_refused(tmp_path):
    from tinyeff._native import captured_fds, tensorflow

    tf = tensorflow()
    import keras

    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with captured_fds(1, 2):
        data = tf.lite.TFLiteConverter.from_keras_model(m).convert()
    with pytest.raises(TinyeffError, match="not a quantized model: its input .* is float32"):
        require_quantized(read_model(data, "float.tflite"))


def test_arena_of_a_kit_model_matches_the_interpreter_running_it(tiny_run):
    from tflite_micro.python.tflite_micro import runtime

    data, info = load_model_file(tiny_run / "model.int8.tflite")
    arena = host_tflm_arena(data, "model")
    assert arena.total == arena.head + arena.tail
    # the recorded arena is what the model uses; TFLM needs a few bytes more while it sets up
    # (measured here: 0 to 64), so a small margin on top of the record is always enough
    interp = runtime.Interpreter.from_bytes(data, arena_size=arena.total + 256)
    interp.set_input(np.zeros(info.input().shape, np.int8), 0)
    interp.invoke()
    assert interp.get_output(0).shape == info.output().shape


def test_inspect_with_a_board_gives_each_runtimes_needs_and_verdict(kws_model, capsys):
    import json

    assert main(["inspect", str(kws_model), "--board", "nucleo-l4r5zi", "--json"]) == 0
    runtimes = json.loads(capsys.readouterr().out)["runtimes"]
    # host TFLM's arena, the DSP average pool's row of 64 int32 sums CMSIS-NN adds, and the margin
    assert runtimes["tflm"] == {"supported": True, "flash_bytes": 53936, "ram_bytes": 24272 + 64 * 4 + 1024, "fits": True}
    # the compiled runtime's plan for KWS with the board's (DSP) kernels, its floor, and its constants in flash
    from tinyeff.codegen import compile_model
    from tinyeff.footprint import load_model_file

    plan = compile_model(*load_model_file(kws_model), "kws", path="dsp").plan
    assert runtimes["compiled"]["ram_bytes"] == plan.arena_bytes < 0.4 * 24272 and runtimes["compiled"]["fits"]
    assert runtimes["compiled"]["ram_floor_bytes"] == plan.floor_bytes == 8000
    assert 24376 < runtimes["compiled"]["flash_bytes"] < 53936  # weights plus biases and requantization


def test_a_runtime_that_does_not_fit_says_by_how_much():
    import dataclasses

    from tinyeff.boards import get_board
    from tinyeff.generate import RuntimeFootprint

    small = dataclasses.replace(get_board("nucleo-l4r5zi"), ram_kib=40, app_ram_kib=16)  # 24 KiB left for a model
    tflm = RuntimeFootprint("tflm", 53936, 25296)
    assert tflm.problem_on(small) == "RAM 25,296 B > 24,576 B left for a model"
    assert RuntimeFootprint("compiled", 27253, 8960).problem_on(small) == ""
    assert RuntimeFootprint("compiled", 0, 0, unsupported="uses GATHER").problem_on(small) == "uses GATHER"


# ---- the host TFLM interpreter behind every arena figure (tinyeff/footprint/arena.py)


@pytest.fixture(scope="module")
def small_conv() -> bytes:
    from op_models import make_case

    return make_case("conv_k3x3_s2_same_relu_d1")


def test_an_op_tflm_has_no_kernel_for_is_named(small_conv):
    from model_edit import edit

    def lsh_projection(model, graph):  # an op of the schema that TFLM never implemented
        code = model.operatorCodes[graph.operators[0].opcodeIndex]
        code.builtinCode = code.deprecatedBuiltinCode = 15

    data = edit(small_conv, lsh_projection)
    with pytest.raises(TinyeffError, match=r"^'edited' uses LSH_PROJECTION, which TFLM does not support; remove that op"):
        host_tflm_arena(data, "edited")


@pytest.fixture
def arena_sizes(monkeypatch) -> list[int]:
    """The arena sizes the host TFLM interpreter is created with, in order (the real interpreter, watched)."""
    from tflite_micro.python.tflite_micro import runtime

    sizes, real = [], runtime.Interpreter.from_bytes

    def watched(model, arena_size, **kwargs):
        sizes.append(arena_size)
        return real(model, arena_size=arena_size, **kwargs)

    monkeypatch.setattr(runtime.Interpreter, "from_bytes", staticmethod(watched))
    return sizes


def test_an_arena_too_small_grows_fourfold_until_the_model_fits(small_conv, arena_sizes, monkeypatch):
    import tinyeff.footprint.arena as arena

    # the conv needs 1,392 B: 512 B is short, 2,048 B holds it (TFLM crashes below about 512 B, so no smaller start)
    monkeypatch.setattr(arena, "_START_ARENA", 512)
    arena.tflm_interpreter(small_conv, "conv")
    assert arena_sizes == [512, 2048]


def test_an_arena_stops_growing_at_its_ceiling(small_conv, arena_sizes, monkeypatch):
    import tinyeff.footprint.arena as arena

    monkeypatch.setattr(arena, "_START_ARENA", 1024)
    monkeypatch.setattr(arena, "_MAX_ARENA", 1024)
    with pytest.raises(TinyeffError, match=r"^TFLM cannot load 'conv' \(Failed to allocate temp memory\. .*missing: 24; "):
        arena.tflm_interpreter(small_conv, "conv")
    assert arena_sizes == [1024]


def test_a_model_tflm_refuses_is_loaded_once(small_conv, arena_sizes):
    from model_edit import edit

    import tinyeff.footprint.arena as arena

    def lsh_projection(model, graph):
        code = model.operatorCodes[graph.operators[0].opcodeIndex]
        code.builtinCode = code.deprecatedBuiltinCode = 15

    with pytest.raises(TinyeffError, match="uses LSH_PROJECTION"):
        arena.tflm_interpreter(edit(small_conv, lsh_projection), "edited")
    assert arena_sizes == [arena._START_ARENA]  # a larger arena cannot give it the kernel


def test_a_tflm_that_fails_without_a_word_is_quoted_by_its_exception(small_conv, monkeypatch):
    """The pinned TFLM logs every failure; a build that does not still gets a reason in the sentence."""
    from tflite_micro.python.tflite_micro import runtime

    import tinyeff.footprint.arena as arena

    def silent(model, arena_size, **kwargs):
        raise RuntimeError("AllocateTensors failed")

    monkeypatch.setattr(runtime.Interpreter, "from_bytes", staticmethod(silent))
    with pytest.raises(TinyeffError, match=r"^TFLM cannot load 'conv' \(AllocateTensors failed\); check that it is a valid int8 model$"):
        arena.tflm_interpreter(small_conv, "conv")


def test_a_model_tflm_refuses_to_prepare_gets_tflm_s_reasons_in_one_sentence(small_conv):
    from model_edit import TYPES, edit

    def int16_output(model, graph):  # int8 in, int16 out: the conv kernel's Prepare refuses it
        graph.tensors[graph.operators[0].outputs[0]].type = TYPES["INT16"]

    with pytest.raises(TinyeffError) as e:
        host_tflm_arena(edit(small_conv, int16_output), "edited")
    message = str(e.value)
    assert message.startswith("TFLM cannot load 'edited' (") and message.endswith("); check that it is a valid int8 model")
    assert "input->type != output->type (9 != 7); Node CONV_2D (number 0) failed to prepare" in message
    assert "\n" not in message


def test_a_model_whose_arena_passes_the_first_try_is_measured_all_the_same():
    """The interpreter starts with 1 MiB and grows 4x until TFLM can allocate: a model whose two
    activations take 2 MiB must load and report them, not stop at the first size."""
    from tinyeff._native import tensorflow
    from tinyeff.compress.quantize import keras_to_int8

    keras = tensorflow().keras
    x = keras.Input((256, 256, 16), batch_size=1)
    model = keras.Model(x, keras.layers.Conv2D(16, 1)(x))
    rep = np.random.default_rng(0).normal(0, 1, (4, 256, 256, 16)).astype(np.float32)
    use = host_tflm_arena(keras_to_int8(model, rep), "wide")
    assert use.head >= 2 * 256 * 256 * 16  # input and output are both live during the conv
    assert use.total == use.head + use.tail and use.tail > 0


def test_tflm_s_allocation_log_is_read_line_by_line():
    from tinyeff.footprint.arena import _line

    log = "Arena allocation total 9000 bytes\nArena allocation head 7000 bytes\nArena allocation tail 2000 bytes\n"
    assert [_line(log, w) for w in ("total", "head", "tail")] == [9000, 7000, 2000]
    with pytest.raises(RuntimeError, match="TFLM printed no 'Arena allocation tail' line; it printed:\nnothing useful"):
        _line("nothing useful", "tail")


def test_a_model_tflm_would_crash_on_is_refused_by_name_before_tflm_sees_it(small_conv):
    from model_edit import edit

    def negative_scale(model, graph):  # TFLM's release build aborts on it instead of refusing
        graph.tensors[graph.operators[0].inputs[1]].quantization.scale[0] = -1.0

    with pytest.raises(TinyeffError, match=r"^'edited' .*scale"):
        host_tflm_arena(edit(small_conv, negative_scale), "edited")


_INLINE = pytest.mark.skipif(os.environ.get("TINYEFF_CONTAINED") == "inline",
                             reason="TINYEFF_CONTAINED=inline (mutation runs) calls TFLM in this process: a crash would end it")


@_INLINE
def test_a_crash_inside_tflm_is_one_sentence_and_the_command_goes_on(kws_like_model, tmp_path, capsys):
    """TFLM's release build aborts on a SOFTMAX whose beta is negative; the kit loads models into
    TFLM in a child process (tinyeff/footprint/contained.py), so inspect names it and returns."""
    from model_edit import edit

    def negative_beta(model, graph):
        for op in graph.operators:
            if model.operatorCodes[op.opcodeIndex].builtinCode == 25:  # SOFTMAX
                op.builtinOptions.beta = -1.0

    bad = tmp_path / "bad.tflite"
    bad.write_bytes(edit(kws_like_model.read_bytes(), negative_beta))
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"tinyeff: error: TFLM, loading '{bad}', crashed (signal SIGABRT): the model is damaged in a way "
                   "the kit's checks do not catch; export it again from the training framework")
    assert main(["inspect", str(kws_like_model)]) == 0  # the next call gets a healthy TFLM


@_INLINE
def test_a_contained_call_returns_raises_or_names_the_crash():
    from tinyeff.footprint.contained import call_contained

    assert call_contained(int, "12", what="int") == 12
    with pytest.raises(ValueError, match="invalid literal"):
        call_contained(int, "twelve", what="int")
    with pytest.raises(TinyeffError, match=r"^abort crashed \(signal SIGABRT\): "):
        call_contained(os.abort, what="abort")


def _graph(tensors: dict[str, str], ops: list[tuple[str, list[str], list[str]]], inputs: list[str], outputs: list[str],
           constants: tuple[str, ...] = (), shapes: dict[str, tuple[int, ...]] | None = None) -> bytes:
    """A model of TENSORS (name -> type), OPS ((op, input names, output names)) and the model's INPUTS and
    OUTPUTS, shapes (1, 4) unless SHAPES says otherwise, zeros in the CONSTANTS: the graph the reader and
    require_quantized judge, each tensor's type as given."""
    from ai_edge_litert import schema_py_generated as schema

    from model_edit import pack

    m = schema.ModelT()
    m.version = 3
    m.buffers = [schema.BufferT()]
    names = list(tensors)
    codes = sorted({op for op, _, _ in ops})
    m.operatorCodes = []
    for op in codes:
        c = schema.OperatorCodeT()
        c.builtinCode = c.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, op)
        m.operatorCodes.append(c)
    g = schema.SubGraphT()
    g.tensors = []
    for name, dtype in tensors.items():
        t = schema.TensorT()
        shape = (shapes or {}).get(name, (1, 4))
        t.name, t.type, t.shape = name.encode(), getattr(schema.TensorType, dtype), np.array(shape, np.int32)
        t.buffer = 0
        if name in constants:
            b = schema.BufferT()
            b.data = np.zeros(4 * int(np.prod(shape)), np.uint8)
            t.buffer = len(m.buffers)
            m.buffers.append(b)
        g.tensors.append(t)
    g.operators = []
    for op, ins, outs in ops:
        o = schema.OperatorT()
        o.opcodeIndex = codes.index(op)
        # '-' (or '-' and a tag, where several are left out): an optional input left out
        o.inputs = np.array([names.index(n) if not n.startswith('-') else -1 for n in ins], np.int32)
        o.outputs = np.array([names.index(n) for n in outs], np.int32)
        g.operators.append(o)
    g.inputs = np.array([names.index(n) for n in inputs], np.int32)
    g.outputs = np.array([names.index(n) for n in outputs], np.int32)
    m.subgraphs = [g]
    return pack(m)


# float edges: a float input only QUANTIZE reads, a float output only DEQUANTIZE writes
_EDGES = {"x": "FLOAT32", "q": "INT8", "a": "INT8", "y": "FLOAT32"}
_EDGE_OPS = [("QUANTIZE", ["x"], ["q"]), ("ADD", ["q", "q"], ["a"]), ("DEQUANTIZE", ["a"], ["y"])]
_REFUSE_INPUT = "'m.tflite' is not a quantized model: its input '{}' is {}; " \
                "quantize it with 'tinyeff quantize' or convert it with int8 (or int16) input and output"


@pytest.mark.parametrize(("tensors", "ops", "inputs", "outputs"), [
    (_EDGES, _EDGE_OPS, ["x"], ["y"]),
    ({"x": "INT16", "n": "INT32", "a": "INT16"}, [("ADD", ["x", "n"], ["a"])], ["x", "n"], ["a"]),
    # a float tensor no op reads or writes (an LSTM's intermediates) is not an activation
    ({"x": "INT8", "a": "INT8", "gate": "FLOAT32"}, [("ADD", ["x", "x"], ["a"])], ["x"], ["a"]),
    # nor is a float constant (the kit's checks judge weights' types op by op)
    ({"x": "INT8", "w": "FLOAT32", "a": "INT8"}, [("ADD", ["x", "w"], ["a"])], ["x"], ["a"]),
], ids=["float_edges", "int16_and_int32", "unused_float", "float_constant"])
def test_integer_models_and_float_edges_are_accepted(tensors, ops, inputs, outputs):
    require_quantized(read_model(_graph(tensors, ops, inputs, outputs, constants=("w",)), "m.tflite"))


@pytest.mark.parametrize(("tensors", "ops", "inputs", "outputs", "message"), [
    # a float input that another op also reads, or that no op reads, or that an op writes
    (_EDGES, [*_EDGE_OPS, ("ADD", ["x", "x"], ["y"])], ["x"], ["y"], _REFUSE_INPUT.format("x", "float32")),
    ({**_EDGES, "z": "FLOAT32"}, _EDGE_OPS, ["x", "z"], ["y"], _REFUSE_INPUT.format("z", "float32")),
    (_EDGES, [*_EDGE_OPS, ("DEQUANTIZE", ["a"], ["x"])], ["x"], ["y"], _REFUSE_INPUT.format("x", "float32")),
    # a float output that DEQUANTIZE does not write, that two ops write, or that an op reads
    (_EDGES, [*_EDGE_OPS[:2], ("QUANTIZE", ["a"], ["y"])], ["x"], ["y"],
     _REFUSE_INPUT.format("y", "float32").replace("input 'y'", "output 'y'")),
    (_EDGES, [*_EDGE_OPS, ("DEQUANTIZE", ["q"], ["y"])], ["x"], ["y"],
     _REFUSE_INPUT.format("y", "float32").replace("input 'y'", "output 'y'")),
    (_EDGES, [*_EDGE_OPS, ("QUANTIZE", ["y"], ["a"])], ["x"], ["y"],
     _REFUSE_INPUT.format("y", "float32").replace("input 'y'", "output 'y'")),
    # not float but not an integer the kit deploys either; an input without a name is named by its index
    ({"x": "UINT8", "a": "INT8"}, [("ADD", ["x", "x"], ["a"])], ["x"], ["a"], _REFUSE_INPUT.format("x", "uint8")),
    ({"": "FLOAT16", "a": "INT8"}, [("QUANTIZE", [""], ["a"])], [""], ["a"], _REFUSE_INPUT.format("0", "float16")),
    # float inside an int8 model: the first tensor, float16 and float64 count too; constants do not
    ({"f": "FLOAT32", "x": "INT8", "a": "INT8", "g": "FLOAT16", "h": "FLOAT64"},
     [("DEQUANTIZE", ["x"], ["f"]), ("ADD", ["f", "f"], ["g"]), ("ADD", ["g", "g"], ["h"]), ("QUANTIZE", ["h"], ["a"])],
     ["x"], ["a"], "'m.tflite' is not a quantized model: 3 activation tensors are float (e.g. 'f'); "
                   "convert it with TFLITE_BUILTINS_INT8 (or the 16x8 ops set) only"),
    ({"x": "INT8", "": "FLOAT16", "a": "INT8"}, [("DEQUANTIZE", ["x"], [""]), ("QUANTIZE", [""], ["a"])], ["x"], ["a"],
     "'m.tflite' is not a quantized model: 1 activation tensors are float (e.g. '1'); "
     "convert it with TFLITE_BUILTINS_INT8 (or the 16x8 ops set) only"),
], ids=["input_read_twice", "input_unread", "input_written", "output_not_dequantized", "output_written_twice",
        "output_read", "uint8_input", "unnamed_float16_input", "float_inside", "unnamed_float_inside"])
def test_float_where_the_kit_computes_is_refused_in_one_sentence(tensors, ops, inputs, outputs, message):
    import re

    with pytest.raises(TinyeffError, match=f"^{re.escape(message)}$"):
        require_quantized(read_model(_graph(tensors, ops, inputs, outputs), "m.tflite"))


def test_a_model_file_is_named_by_its_path(tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(TinyeffError, match=f"^cannot read model '{missing}' \\(No such file or directory\\); check the path$"):
        load_model_file(missing)
    damaged = tmp_path / "cut.tflite"
    damaged.write_bytes(b"\0\0\0\0TFL3" + bytes(8))
    with pytest.raises(TinyeffError, match=f"^'{damaged}' "):
        load_model_file(damaged)
    good = tmp_path / "m.tflite"
    good.write_bytes(_graph(_EDGES, _EDGE_OPS, ["x"], ["y"]))
    assert load_model_file(good)[1].name == str(good)


def test_enum_names_are_the_public_integer_members_only():
    from tinyeff.footprint.tflite_file import _enum_names

    # Python 3.13 gives every class an integer __firstlineno__, which must not become an op or type name
    class Codes:
        CONV_2D = 3
        _PRIVATE = 4
        NOTE = "not a code"

    Codes.__firstlineno__ = 3
    assert _enum_names(Codes) == {3: "CONV_2D"}



def _judged(dtype: str = "INT8", shape=(1, 4), data: bytes | None = None, scales=(), zero_points=(), name: str = "w"):
    """(bytes, read_model) of x + t -> a, where t (tensor 1) is the tensor under test: a constant holding DATA,
    or, when DATA is None, an activation (written by x + x)."""
    from ai_edge_litert import schema_py_generated as schema

    from model_edit import edit

    tensors = {"x": "INT8", name: "INT8", "a": "INT8"}
    ops = [("ADD", ["x", name], ["a"])] if data is not None else [("ADD", ["x", "x"], [name]), ("ADD", ["x", name], ["a"])]
    base = _graph(tensors, ops, ["x"], ["a"], constants=(name,) if data is not None else ())

    def change(m, g):
        t = g.tensors[1]
        t.type, t.shape = getattr(schema.TensorType, dtype), np.array(shape, np.int32)
        if data is not None:
            m.buffers[t.buffer].data = np.frombuffer(data, np.uint8)
        if scales or zero_points:
            t.quantization = schema.QuantizationParametersT()
            t.quantization.scale = np.array(scales, np.float32)
            t.quantization.zeroPoint = np.array(zero_points, np.int64)
    model = edit(base, change)
    return model, read_model(model, "m.tflite")


_CORRUPT = "; the file is truncated or corrupt, "
_LOADABLE_REFUSALS = {
    "short_constant": (dict(data=bytes(3)), "'m.tflite' tensor 1 (w) holds 3 bytes of data but its shape (1, 4) needs 4" + _CORRUPT),
    "unnamed": (dict(data=bytes(3), name=""), "'m.tflite' tensor 1 holds 3 bytes of data but its shape (1, 4) needs 4" + _CORRUPT),
    "wide_type": (dict(dtype="INT32", data=bytes(8)), "'m.tflite' tensor 1 (w) holds 8 bytes of data but its shape (1, 4) needs 16"),
    "negative_dims": (dict(shape=(-1, -4), data=bytes(4)), "holds 4 bytes of data but its shape (-1, -4) needs 4" + _CORRUPT),
    "zero_activation_scale": (dict(scales=(0.0,), zero_points=(0,)),
                              "'m.tflite' tensor 1 (w) has the quantization scale 0.0; scales must be finite and positive, "),
    "zero_int16_scale": (dict(dtype="INT16", scales=(0.0,), zero_points=(0,)), "(w) has the quantization scale 0.0; "),
    "negative_weight_scale": (dict(data=bytes(4), scales=(0.5, -0.5), zero_points=(0, 0)), "(w) has the quantization scale -0.5; "),
    "nan_scale": (dict(data=bytes(4), scales=(float("nan"),), zero_points=(0,)), "(w) has the quantization scale nan; "),
    "infinite_scale": (dict(dtype="INT32", scales=(float("inf"),), zero_points=(0,)), "(w) has the quantization scale inf; "),
    "zero_points": (dict(data=bytes(4), scales=(0.5, 0.25), zero_points=(0, 0, 0)),
                    "'m.tflite' tensor 1 (w) has 2 quantization scales and 3 zero points; "
                    "it needs one zero point or one per scale, "),
    "no_zero_point": (dict(data=bytes(4), scales=(0.5, 0.25, 1.0)), "(w) has 3 quantization scales and 0 zero points; "),
}


@pytest.mark.parametrize("what", _LOADABLE_REFUSALS)
def test_what_tflm_would_read_past_or_abort_on_is_refused(what):
    from tinyeff.footprint import require_loadable

    kwargs, message = _LOADABLE_REFUSALS[what]
    with pytest.raises(TinyeffError) as e:
        require_loadable(_judged(**kwargs)[1])
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("kwargs", [
    dict(data=bytes(4)),
    dict(dtype="INT32", data=bytes(16), scales=(0.0,), zero_points=(0,)),  # a constant's scale may be 0 (all-zero weights)
    dict(data=bytes(4), scales=(0.0, 0.5), zero_points=(0,)),  # one zero point for all scales
    dict(data=bytes(4), scales=(0.5, 0.5, 0.5, 0.5), zero_points=(0, 1, 2, 3)),
    dict(dtype="INT32", scales=(0.0,), zero_points=(0,)),  # an int32 activation (indices, shapes): no kernel divides by it
    dict(dtype="STRING", data=bytes(5)),  # not a dense array: its size is not judged
], ids=["int8_constant", "zero_constant_scale", "one_zero_point", "zero_point_per_scale", "int32_activation", "string"])
def test_what_tflm_loads_is_not_refused(kwargs):
    from tinyeff.footprint import require_loadable

    require_loadable(_judged(**kwargs)[1])


def test_constant_array_reads_the_tensors_bytes_or_says_why_not():
    import re

    from tinyeff.footprint.tflite_file import constant_array

    values = np.array([[7, -2, 3, -2**31]], np.int32)
    data, info = _judged(dtype="INT32", data=values.tobytes())
    got = constant_array(data, info.tensors[1])
    assert got.dtype == np.int32 and np.array_equal(got, values) and got.flags.writeable
    with pytest.raises(ValueError, match=r"^tensor 2 has no constant data$"):
        constant_array(data, info.tensors[2])
    data, info = _judged(dtype="FLOAT16", data=bytes(8))
    with pytest.raises(TinyeffError, match=re.escape(
            "tensor 1 holds float16 constants, which tinyeff cannot read; export the model with int8, int16, int32, int64, uint8, "
            "float32 constants")):
        constant_array(data, info.tensors[1])
    # read_model passes a constant whose bytes do not fill its shape (inspect reports it); reading it is refused
    for shape, nbytes, needs in (((1, 4), 12, 16), ((-1, -1), 4, 4)):
        data, info = _judged(dtype="INT32", shape=shape, data=bytes(nbytes))
        with pytest.raises(TinyeffError, match=re.escape(f"tensor 1 holds {nbytes} bytes but its shape {shape} needs {needs}; ")):
            constant_array(data, info.tensors[1])


@pytest.mark.parametrize(("op", "shapes", "macs"), [
    ("FULLY_CONNECTED", {"x": (1, 6), "w": (3, 6), "y": (1, 3)}, 3 * 6),
    ("FULLY_CONNECTED", {"x": (1, 6), "w": (3, 6), "b": (3,), "y": (1, 3)}, 3 * 6),
    ("CONV_2D", {"x": (1, 5, 5, 2), "w": (4, 3, 2, 2), "y": (1, 5, 5, 4)}, 5 * 5 * 4 * 3 * 2 * 2),
    ("CONV_2D", {"x": (1, 5, 5, 2), "w": (4, 3, 2, 2), "b": (4,), "y": (1, 5, 5, 4)}, 5 * 5 * 4 * 3 * 2 * 2),
    ("DEPTHWISE_CONV_2D", {"x": (1, 5, 5, 4), "w": (1, 3, 2, 4), "b": (4,), "y": (1, 5, 5, 4)}, 5 * 5 * 4 * 3 * 2),
    # every input value meets kh x kw x output channels weights
    ("TRANSPOSE_CONV", {"s": (4,), "w": (4, 3, 2, 2), "x": (1, 5, 5, 2), "y": (1, 10, 10, 4)}, 5 * 5 * 2 * 3 * 2 * 4),
    ("ADD", {"x": (1, 5, 5, 2), "w": (1, 5, 5, 2), "y": (1, 5, 5, 2)}, 0),
    # TFLM's dense layer accumulates over the filter's last dimension
    ("FULLY_CONNECTED", {"x": (1, 6), "w": (3, 1, 6), "y": (1, 3)}, 3 * 6),
    # malformed: too few inputs, a missing filter, many inputs (read, counted as no MACs; check_model refuses them)
    ("TRANSPOSE_CONV", {"s": (4,), "w": (4, 3, 2, 2), "y": (1, 10, 10, 4)}, 0),
    ("TRANSPOSE_CONV", {"s": (4,), "-": None, "x": (1, 5, 5, 2), "y": (1, 10, 10, 4)}, 0),
    ("CONCATENATION", {"x": (1, 5), **{f"c{i}": (1, 5) for i in range(9)}, "y": (1, 50)}, 0),
    # an LSTM: per time step, the input and the previous output meet each gate's weights
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"x": (1, 5, 6), **{f"wi{i}": (8, 6) for i in range(4)},
                                      **{f"wr{i}": (8, 8) for i in range(4)}, "y": (1, 5, 8)}, 5 * (4 * 8 * 6 + 4 * 8 * 8)),
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"x": (1, 5, 6), **{f"wi{i}": (8, 6) for i in range(4)},
                                      **{f"wr{i}": (8, 8) for i in range(4)}, **{f"o{i}": (8,) for i in range(15)},
                                      "y": (1, 5, 8)}, 5 * (4 * 8 * 6 + 4 * 8 * 8)),
    # coupled input and forget gates (CIFG): the input gate's two weights are left out
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"x": (1, 5, 6), "-i": None, **{f"wi{i}": (8, 6) for i in range(3)},
                                      "-r": None, **{f"wr{i}": (8, 8) for i in range(3)}, "y": (1, 5, 8)},
     5 * (3 * 8 * 6 + 3 * 8 * 8)),
    # one feature per time step: the steps are the input's elements
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"x": (1, 5, 1), **{f"wi{i}": (8, 1) for i in range(4)},
                                      **{f"wr{i}": (8, 8) for i in range(4)}, "y": (1, 5, 8)}, 5 * (4 * 8 * 1 + 4 * 8 * 8)),
    # malformed: a gate's weights short (check_model refuses it), no input
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"x": (1, 5, 6), **{f"wi{i}": (8, 6) for i in range(4)},
                                      **{f"wr{i}": (8, 8) for i in range(3)}, "y": (1, 5, 8)}, 0),
    ("UNIDIRECTIONAL_SEQUENCE_LSTM", {"-x": None, **{f"wi{i}": (8, 6) for i in range(4)},
                                      **{f"wr{i}": (8, 8) for i in range(4)}, "y": (1, 5, 8)}, 0),
], ids=["dense", "dense_bias", "conv", "conv_bias", "depthwise", "transpose_conv", "add", "dense_3d_filter",
        "transpose_conv_two_inputs", "transpose_conv_no_filter", "concat_of_ten", "lstm_gates_only", "lstm",
        "lstm_cifg", "lstm_one_feature", "lstm_eight_inputs", "lstm_no_input"])
def test_multiply_accumulates_of_each_op_kind(op, shapes, macs):
    names = list(shapes)
    tensors = {n: "INT8" for n in names if not n.startswith("-")}
    data = _graph(tensors, [(op, names[:-1], names[-1:])], [n for n in names if n == "x"] or ["y"], ["y"],
                  constants=tuple(n for n in tensors if n not in ("x", "y")), shapes=shapes)
    got = read_model(data, "m.tflite").ops[0].macs
    assert got == macs and type(got) is int


@pytest.mark.parametrize("op", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_a_convolution_whose_filter_is_not_4d_is_refused(op):
    shapes = {"x": (1, 5, 5, 2), "w": (4, 3, 2), "y": (1, 5, 5, 4)}
    data = _graph(dict.fromkeys(shapes, "INT8"), [(op, ["x", "w", "-"], ["y"])], ["x"], ["y"], constants=("w",), shapes=shapes)
    # the bias left out is named as such, not as the shape of the tensor that index -1 would pick
    with pytest.raises(TinyeffError, match=rf"^'m.tflite' op 0 \({op}\) has tensors of shapes \[\(1, 5, 5, 2\), \(4, 3, 2\), "
                                           rf"None, \(1, 5, 5, 4\)\], which no {op} has; the file is corrupt"):
        read_model(data, "m.tflite")


def _set(path: str, value):
    """A change for model_edit.edit: set PATH (attribute names and indices from the model, '.'-separated) to VALUE."""
    def change(m, g):
        *parents, last = path.split(".")
        obj = m
        for p in parents:
            obj = obj[int(p)] if p.isdigit() else getattr(obj, p)
        setattr(obj, last, value)
    return change


def _metadata(buffer: int):
    def change(m, g):
        from ai_edge_litert import schema_py_generated as schema

        meta = schema.MetadataT()
        meta.name, meta.buffer = b"OfflineMemoryAllocation", buffer
        m.metadata = [meta]
    return change


_READER_REFUSALS = {
    "no_subgraph": (_set("subgraphs", []), "'m.tflite' holds no subgraph"),
    "metadata_buffer": (_metadata(9), "'m.tflite' metadata names buffer 9, but it has only 1 buffers"),
    "no_model_inputs": (_set("subgraphs.0.inputs", None), "'m.tflite' has no model inputs"),
    "no_model_outputs": (_set("subgraphs.0.outputs", None), "'m.tflite' has no model outputs"),
    "model_input_missing": (_set("subgraphs.0.inputs", np.array([-1], np.int32)),
                            "'m.tflite' names tensor -1 as a model input, but it has only 3 tensors"),
    "op_inputs": (_set("subgraphs.0.operators.0.inputs", None), "'m.tflite' op 0 (ADD) has no inputs"),
    "op_outputs": (_set("subgraphs.0.operators.0.outputs", None), "'m.tflite' op 0 (ADD) has no outputs"),
    "op_output_missing": (_set("subgraphs.0.operators.0.outputs", np.array([-1], np.int32)),
                          "'m.tflite' op 0 (ADD) names tensor -1 as an output, but it has only 3 tensors"),
    "op_intermediate_beyond": (_set("subgraphs.0.operators.0.intermediates", np.array([-1, 3], np.int32)),
                               "'m.tflite' op 0 (ADD) names tensor 3 as an intermediate, but it has only 3 tensors"),
    "op_input_beyond": (_set("subgraphs.0.operators.0.inputs", np.array([0, 3], np.int32)),
                        "'m.tflite' op 0 (ADD) names tensor 3 as an input, but it has only 3 tensors"),
    "tensor_buffer_beyond": (_set("subgraphs.0.tensors.1.buffer", 9),
                             "'m.tflite' tensor 1 names buffer 9, but it has only 1 buffers"),
}


@pytest.mark.parametrize("what", _READER_REFUSALS)
def test_a_graph_that_names_what_it_lacks_is_refused_in_one_sentence(what):
    import re

    from model_edit import edit

    base = _graph({"x": "INT8", "w": "INT8", "a": "INT8"}, [("ADD", ["x", "w"], ["a"])], ["x"], ["a"])
    read_model(base, "m.tflite")
    change, message = _READER_REFUSALS[what]
    with pytest.raises(TinyeffError, match="^" + re.escape(message + "; the file is corrupt, ")):
        read_model(edit(base, change), "m.tflite")


def test_ops_are_named_by_their_builtin_or_custom_code():
    from model_edit import edit

    base = _graph({"x": "INT8", "a": "INT8"}, [("ADD", ["x", "x"], ["a"])], ["x"], ["a"])
    assert read_model(base, "m.tflite").op_names == ("ADD",)
    # a code newer than the schema the kit reads with, and a custom op whose name is not UTF-8
    newer = edit(base, _set("operatorCodes.0.builtinCode", 250))
    assert read_model(newer, "m.tflite").op_names == ("BUILTIN_250",)
    custom = edit(base, _set("operatorCodes.0.customCode", b"Te\xffOp"))
    assert read_model(custom, "m.tflite").op_names == ("CUSTOM:Te\ufffdOp",)


def test_a_tensor_is_described_as_the_file_has_it():
    from model_edit import edit

    base = _graph({"x": "INT8", "w": "INT8", "a": "INT8"}, [("ADD", ["x", "w"], ["a"])], ["x"], ["a"], constants=("w",))
    x, w, a = read_model(base, "m.tflite").tensors
    # no quantization parameters: no scales, no zero points, dimension 0; an activation has no data and no offset
    assert (x.scales, x.zero_points, x.quantized_dimension) == ((), (), 0)
    assert (x.constant, x.nbytes, x.data_offset) == (False, 0, 0)
    assert w.constant and w.nbytes == 16 and base[w.data_offset:w.data_offset + 16] == bytes(16)
    assert x.variable is False
    # a variable tensor (an LSTM's state), a name that is not UTF-8, a type newer than the schema the kit reads with
    changed = edit(base, lambda m, g: (setattr(g.tensors[2], "isVariable", True), setattr(g.tensors[0], "name", b"in\xffput"),
                                       setattr(g.tensors[1], "type", 99)))
    x, w, a = read_model(changed, "m.tflite").tensors
    assert a.variable is True and x.name == "in\ufffdput" and w.dtype == "TYPE_99"


def test_a_model_is_named_model_unless_its_caller_names_it():
    with pytest.raises(TinyeffError, match="^'model' is not a TFLite model"):
        read_model(b"not a flatbuffer")


def test_a_file_may_read_four_items_a_byte_and_no_more(monkeypatch):
    """An honest file reads each table and vector item about once; the budget (4 per byte and 1024)
    is what stops a file whose offsets alias from being unpacked for minutes."""
    import tinyeff.footprint.tflite_file as tflite_file

    budgets = []
    real = tflite_file.read_budget

    def spy(items):
        budgets.append(items)
        return real(items)

    monkeypatch.setattr(tflite_file, "read_budget", spy)
    data = _graph({"x": "INT8", "w": "INT8", "a": "INT8"}, [("ADD", ["x", "w"], ["a"])], ["x"], ["a"], constants=("w",))
    read_model(data, "m.tflite")
    assert budgets == [4 * len(data) + 1024]


def test_an_ops_intermediates_are_read_and_may_be_left_out():
    from model_edit import edit

    base = _graph({"x": "INT8", "w": "INT8", "a": "INT8"}, [("ADD", ["x", "w"], ["a"])], ["x"], ["a"])
    assert read_model(base, "m.tflite").ops[0].intermediates == ()
    lstm_like = edit(base, _set("subgraphs.0.operators.0.intermediates", np.array([1, -1], np.int32)))
    assert read_model(lstm_like, "m.tflite").ops[0].intermediates == (1, -1)
