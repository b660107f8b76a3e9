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
