"""Mutated model files through the compiled runtime: each is refused in one sentence, or it runs
bit-exact with the host TFLM interpreter and stays inside its arena.

Seed models are small converter-made int8 models (op_models.py). A mutant changes what a hand edit,
a buggy exporter or a damaged file changes: a shape, a scale, a zero point, an op option, a tensor
type, a constant buffer or its bytes, the wiring of an op, the model's input or output, or raw file
bytes. Reading and compiling a mutant either succeeds or raises TinyeffError; any other exception is
a bug. When it compiles and TFLM runs it too, the generated C (on the generic and, alternately, the
dsp kernel path) must give TFLM's bytes built with AddressSanitizer and UBSan as a program run in a
subprocess, where an out-of-arena write or a read past a constant array fails; the first such mutant
of each seed also goes through the host library build_for_host makes (its full -O2 build is what
takes time), loaded in a worker process so that a crash is reported with the mutant instead of
ending pytest. TFLM runs in that worker too: on some mutants it aborts (a TFLITE_CHECK) or crashes,
which makes a mutant without a reference, not a tinyeff failure.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import traceback
from pathlib import Path

import numpy as np
import pytest

from model_edit import TYPES, pack, unpack
from op_models import make_case
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from worker import Worker

SEED_CASES = ("conv_k3x3_s2_same_relu_d1", "dw_k3_s1_same_None_m2", "dense_softmax", "add_relu", "avgpool_3_s2_same",
              "flatten_dense", "concat", "mul_const", "pad", "mean_gap_keepdims", "logistic_dense", "float_io_conv",
              "tconv_k3_s2_same_relu", "slice_channels", "leaky_relu_steep_wide", "hard_swish_wide", "sub_broadcast",
              # int16 ("16x8") models, and an integer LSTM whose state carries from one input to the next
              "int16:conv_k3x3_s2_same_relu_d1", "int16:add_broadcast", "int16:small_net", "lstm:seq8")
MUTANTS_PER_CASE = 25
N_INPUTS = 4
RUN_TIMEOUT_S = 60

# codes of ops the compiled runtime runs (what an op's code may be changed to)
_OPCODES = {"ADD": 0, "AVERAGE_POOL_2D": 1, "CONCATENATION": 2, "CONV_2D": 3, "DEPTHWISE_CONV_2D": 4, "DEQUANTIZE": 6,
            "FULLY_CONNECTED": 9, "LOGISTIC": 14, "MAX_POOL_2D": 17, "MUL": 18, "RESHAPE": 22, "SOFTMAX": 25, "PAD": 34,
            "MEAN": 40, "PADV2": 60, "QUANTIZE": 114, "RELU": 19, "RELU6": 21, "TANH": 28, "SUB": 41, "SQUEEZE": 43,
            "STRIDED_SLICE": 45, "MAXIMUM": 55, "MINIMUM": 57, "TRANSPOSE_CONV": 67, "RESIZE_NEAREST_NEIGHBOR": 97,
            "LEAKY_RELU": 98, "HARD_SWISH": 117, "UNIDIRECTIONAL_SEQUENCE_LSTM": 44}
_OPTION_VALUES = {
    "cellClip": (0.0, -1.0, 1e-6, 10.0, math.nan, math.inf), "projClip": (0.0, 1.0, math.nan), "timeMajor": (True, False),
    "strideW": (0, 1, 2, 3, -1, 9), "strideH": (0, 1, 2, 3, -1, 9), "dilationWFactor": (0, 1, 2, 3, -1),
    "dilationHFactor": (0, 1, 2, 3, -1), "padding": (0, 1, 2), "fusedActivationFunction": (0, 1, 2, 3, 4, 5, 99),
    "depthMultiplier": (0, 1, 2, 3, 4, -1), "filterWidth": (0, 1, 2, 3, 4, 9, -1), "filterHeight": (0, 1, 2, 3, 4, 9, -1),
    "beta": (0.0, -1.0, 0.5, 2.0, math.nan, math.inf), "axis": (-5, -4, -1, 0, 1, 2, 3, 4), "keepNumDims": (True, False),
    "weightsFormat": (0, 1), "potScaleInt16": (True, False), "alpha": (0.0, -0.5, 0.2, 3.0, math.nan, math.inf),
    "alignCorners": (True, False), "halfPixelCenters": (True, False), "beginMask": (0, 1, 2, 5, 15, -1),
    "endMask": (0, 1, 2, 5, 15, -1), "shrinkAxisMask": (0, 1, 2, 4), "ellipsisMask": (0, 1, 2), "newAxisMask": (0, 1, 2),
    "offset": (True, False),
}


# ---- mutations: each edits the unpacked model in place and says what it did, or returns None when it does not apply


def _pick(rng, items):
    return items[int(rng.integers(len(items)))] if len(items) else None


def _shape(m, g, rng):
    # activations mostly: a constant's new shape mostly just disagrees with its data
    t = _pick(rng, [t for t in g.tensors if t.shape is not None and len(t.shape)
                    and (m.buffers[t.buffer].data is None or rng.random() < 0.3)])
    if t is None:
        return None
    shape = [int(d) for d in t.shape]
    k = int(rng.integers(len(shape)))
    how = int(rng.integers(4))
    if how == 0 and len(shape) > 1:
        del shape[k]
    elif how == 1:
        shape.insert(k, int(_pick(rng, (1, 2))))
    else:
        shape[k] = int(_pick(rng, (shape[k] + 1, shape[k] - 1, 2 * shape[k], 1, 0, -1, shape[k] + 3)))
    before, t.shape = list(t.shape), np.array(shape, np.int32)
    return f"shape of tensor {g.tensors.index(t)} {before} -> {shape}"


def _quantized(g):
    return [t for t in g.tensors if t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)]


def _scale(m, g, rng):
    t = _pick(rng, _quantized(g))
    if t is None:
        return None
    q, i = t.quantization, g.tensors.index(t)
    scales = [float(s) for s in q.scale]
    how = int(rng.integers(3))
    if how == 0 and len(scales) > 1:
        scales = scales[:-1] if rng.random() < 0.5 else scales[:1]
    elif how == 1:
        scales = scales + scales[:1]
    else:
        k = int(rng.integers(len(scales)))
        s = scales[k]
        scales[k] = float(_pick(rng, (s * 0.5, s * 2, s * 1e3, s * 1e-3, 0.0, -s, math.nan, math.inf, 1e-38, 1e-45, 3e38)))
    before, q.scale = list(q.scale), np.array(scales, np.float32)
    return f"scales of tensor {i} {before[:4]} -> {scales[:4]} ({len(before)} -> {len(scales)})"


def _zero_point(m, g, rng):
    t = _pick(rng, _quantized(g))
    if t is None or t.quantization.zeroPoint is None:
        return None
    q, i = t.quantization, g.tensors.index(t)
    zps = [int(z) for z in q.zeroPoint]
    how = int(rng.integers(3))
    if how == 0:
        zps = zps[:-1] if rng.random() < 0.5 else zps + [0]
    else:
        k = int(rng.integers(len(zps)))
        z = zps[k]
        zps[k] = int(_pick(rng, (z + 1, z - 1, z + 50, 127, -128, 128, -129, 255, -1000)))
    before, q.zeroPoint = list(q.zeroPoint), np.array(zps, np.int64)
    return f"zero points of tensor {i} {before[:4]} -> {zps[:4]}"


def _quantized_dimension(m, g, rng):
    t = _pick(rng, [t for t in _quantized(g) if len(t.quantization.scale) > 1])
    if t is None:
        return None
    before, t.quantization.quantizedDimension = t.quantization.quantizedDimension, int(rng.integers(5))
    return f"quantized dimension of tensor {g.tensors.index(t)} {before} -> {t.quantization.quantizedDimension}"


def _option(m, g, rng):
    op = _pick(rng, [o for o in g.operators if o.builtinOptions is not None])
    if op is None:
        return None
    k = g.operators.index(op)
    if rng.random() < 0.1:
        op.builtinOptionsType, op.builtinOptions = 0, None
        return f"op {k} loses its options"
    fields = [f for f, v in vars(op.builtinOptions).items() if isinstance(v, (bool, int, float)) and f in _OPTION_VALUES]
    field = _pick(rng, fields)
    if field is None:
        return None
    before = getattr(op.builtinOptions, field)
    setattr(op.builtinOptions, field, _pick(rng, _OPTION_VALUES[field]))
    return f"op {k} option {field} {before} -> {getattr(op.builtinOptions, field)}"


def _type(m, g, rng):
    t = _pick(rng, g.tensors)
    before, t.type = t.type, int(_pick(rng, list(TYPES.values())))
    return f"type of tensor {g.tensors.index(t)} {before} -> {t.type}"


def _constant_tensor(m, g, rng):
    """A tensor whose buffer holds data (a weight, bias or constant operand), or None."""
    return _pick(rng, [t for t in g.tensors if t.buffer < len(m.buffers)  # an earlier mutation may have moved it past them
                       and m.buffers[t.buffer].data is not None and len(m.buffers[t.buffer].data)])


def _buffer(m, g, rng):
    t = _constant_tensor(m, g, rng)
    if t is None:
        return None
    i, buf = g.tensors.index(t), m.buffers[t.buffer]
    how = int(rng.integers(3))
    if how == 0:
        n = int(rng.integers(len(buf.data)))
        buf.data = buf.data[:n]
        return f"buffer of tensor {i} truncated to {n} bytes"
    if how == 1:
        buf.data = np.concatenate([buf.data, np.zeros(int(_pick(rng, (1, 4, 16))), np.uint8)])
        return f"buffer of tensor {i} grown to {len(buf.data)} bytes"
    before, t.buffer = t.buffer, int(rng.integers(len(m.buffers) + 2))
    if t.buffer >= len(m.buffers):
        t.buffer = len(m.buffers) + 5
    return f"tensor {i} buffer {before} -> {t.buffer}"


def _data(m, g, rng):
    """Constant values the converter would not write: random weights, extreme biases."""
    t = _constant_tensor(m, g, rng)
    if t is None:
        return None
    i, buf = g.tensors.index(t), m.buffers[t.buffer]
    data = np.array(buf.data, np.uint8)
    if t.type == TYPES["INT32"] and len(data) >= 4 and rng.random() < 0.6:
        values = data.view(np.int32)
        k = int(rng.integers(len(values)))
        values[k] = int(_pick(rng, (2**31 - 1, -(2**31), 2**30, -(2**24), 2**20)))
        buf.data = data
        return f"tensor {i} value {k} -> {int(values[k])}"
    n = int(rng.integers(1, min(len(data), 16) + 1))
    where = rng.choice(len(data), n, replace=False)
    data[where] = rng.integers(0, 256, n, dtype=np.uint8)
    buf.data = data
    return f"tensor {i}: {n} random bytes"


def _wire(m, g, rng):
    op = _pick(rng, g.operators)
    k, n = g.operators.index(op), len(g.tensors)
    how = int(rng.integers(4))
    if how == 0:
        ins = list(op.inputs)
        j = int(rng.integers(len(ins)))
        ins[j] = int(_pick(rng, (int(rng.integers(n)), -1, n + 3)))
        before, op.inputs = list(op.inputs), np.array(ins, np.int32)
        return f"op {k} inputs {before} -> {ins}"
    if how == 1:
        before = list(op.outputs)
        op.outputs = np.array([int(_pick(rng, (int(rng.integers(n)), n + 3)))], np.int32)
        return f"op {k} outputs {before} -> {list(op.outputs)}"
    if how == 2 and len(op.inputs) > 1:
        before, op.inputs = list(op.inputs), np.array(list(op.inputs)[:-1], np.int32)
        return f"op {k} inputs {before} -> {list(op.inputs)}"
    before, op.inputs = list(op.inputs), np.array(list(op.inputs) + [int(rng.integers(n))], np.int32)
    return f"op {k} inputs {before} -> {list(op.inputs)}"


def _opcode(m, g, rng):
    code = _pick(rng, m.operatorCodes)
    name = _pick(rng, list(_OPCODES))
    k, before = m.operatorCodes.index(code), code.builtinCode
    code.builtinCode = _OPCODES[name]
    code.deprecatedBuiltinCode = min(_OPCODES[name], 127)
    return f"operator code {k} {before} -> {name}"


def _model_io(m, g, rng):
    which = _pick(rng, ("inputs", "outputs"))
    before = list(getattr(g, which))
    setattr(g, which, np.array([int(rng.integers(len(g.tensors)))], np.int32))
    return f"model {which} {before} -> {list(getattr(g, which))}"


_MUTATIONS = (_shape, _scale, _zero_point, _quantized_dimension, _option, _type, _buffer, _data, _wire, _opcode, _model_io)


def mutant(data: bytes, rng) -> tuple[bytes, str]:
    """One mutant of the model DATA and what was changed."""
    if rng.random() < 0.12:  # raw bytes: a damaged file
        raw = bytearray(data)
        if rng.random() < 0.3:
            n = int(rng.integers(8, len(raw)))
            return bytes(raw[:n]), f"file truncated to {n} bytes"
        where = rng.choice(len(raw), int(rng.integers(1, 5)), replace=False)
        for w in where:
            raw[w] = int(rng.integers(256))
        return bytes(raw), f"bytes {sorted(int(w) for w in where)} randomized"
    m = unpack(data)
    g = m.subgraphs[0]
    done = []
    while not done or (len(done) < 2 and rng.random() < 0.2):
        change = _MUTATIONS[int(rng.integers(len(_MUTATIONS)))](m, g, rng)
        if change:
            done.append(change)
    return pack(m), "; ".join(done)


# ---- TFLM and the host library in a worker process, so that an abort or a crash is a result, not the end of pytest


def _serve(conn) -> None:
    from tinyeff.codegen import build_for_host
    from tinyeff.reference import tflm_outputs

    while True:
        try:
            kind, data, x, workdir, path = conn.recv()  # one request: ("tflm" | "host", model, inputs, workdir, path)
        except EOFError:
            return
        try:
            if kind == "tflm":
                result = ("ok", tflm_outputs(data, x))
            else:
                host = build_for_host(data, read_model(data, "mutant"), Path(workdir), path=path)
                result = ("ok", host.run(x))
        except Exception as e:  # reported to the parent, which decides what it means
            result = ("error", f"{type(e).__name__}: {e}")
        conn.send(result)


# ---- the generated C under AddressSanitizer and UBSan

_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "tinyeff_model.h"
/* stdin: samples of TINYEFF_INPUT_BYTES each (every input in turn); stdout: every output of each */
int main(void) {
  static unsigned char in[TINYEFF_INPUT_BYTES];
  static const unsigned in_sizes[TINYEFF_INPUTS] = TINYEFF_INPUT_SIZES, out_sizes[TINYEFF_OUTPUTS] = TINYEFF_OUTPUT_SIZES;
  while (fread(in, 1, sizeof in, stdin) == sizeof in) {
    const unsigned char *x = in;
    for (int i = 0; i < TINYEFF_INPUTS; x += in_sizes[i++]) memcpy(tinyeff_input(i), x, in_sizes[i]);
    tinyeff_invoke();
    for (int i = 0; i < TINYEFF_OUTPUTS; ++i) fwrite(tinyeff_output(i), 1, out_sizes[i], stdout);
  }
  return 0;
}
"""
_SANITIZE = ("-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all")


def host_paths() -> tuple[str, ...]:
    """Kernel paths the host can build: generic, and dsp (through its portable SIMD forms) once its files are there."""
    from tinyeff.codegen import paths
    from tinyeff.resources import resource_dir

    kernels = resource_dir("firmware") / "kernels"
    return tuple(p for p in ("generic", "dsp") if all((kernels / f).exists() for f in paths.files(p)))


class _Sanitized:
    """Builds a compiled model with its path's kernels (compiled once per path) into a sanitized program and runs it."""

    def __init__(self, workdir: Path):
        from tinyeff.codegen import paths
        from tinyeff.codegen.host import C_FLAGS
        from tinyeff.resources import resource_dir

        self.cc = shutil.which("gcc")
        self.flags = [f for f in C_FLAGS if not f.startswith("-O")] + list(_SANITIZE)
        self.kernels = resource_dir("firmware") / "kernels"
        self.objects = {}
        for path in host_paths():
            (workdir / path).mkdir()
            self.objects[path] = []
            for src in (self.kernels / f for f in paths.sources(path)):
                obj = workdir / path / (src.stem + ".o")
                r = subprocess.run([self.cc, *self.flags, f"-I{self.kernels}", "-c", str(src), "-o", str(obj)],
                                   capture_output=True, text=True)
                assert r.returncode == 0, r.stderr
                self.objects[path].append(obj)

    def run(self, compiled, path: str, x: np.ndarray, workdir: Path) -> tuple[bool, object]:
        """(True, output bytes per input) or (False, what went wrong)."""
        workdir.mkdir(parents=True, exist_ok=True)
        compiled.write(workdir)
        (workdir / "driver.c").write_text(_DRIVER)
        exe = workdir / "model_asan"
        r = subprocess.run([self.cc, *self.flags, f"-I{self.kernels}", f"-I{workdir}", str(workdir / "driver.c"),
                            str(workdir / "tinyeff_model.c"), *map(str, self.objects[path]), "-o", str(exe)],
                           capture_output=True, text=True)
        if r.returncode:
            return False, f"generated C does not compile:\n{r.stderr[-2000:]}"
        env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0", UBSAN_OPTIONS="print_stacktrace=1")
        try:
            r = subprocess.run([str(exe)], input=x.tobytes(), capture_output=True, timeout=RUN_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return False, f"hung for {RUN_TIMEOUT_S} s"
        if r.returncode:
            return False, f"exit code {r.returncode}:\n{r.stderr.decode(errors='replace')[-3000:]}"
        return True, r.stdout


# ---- the fuzz loop


def _inputs(info, rng) -> np.ndarray:
    t = info.input()
    if t.dtype == "FLOAT32":
        return rng.normal(0, 2, (N_INPUTS, *t.shape)).astype(np.float32)
    if t.dtype == "INT16":
        return rng.integers(-32768, 32768, (N_INPUTS, *t.shape), dtype=np.int16)
    return rng.integers(-128, 128, (N_INPUTS, *t.shape), dtype=np.int8)


def _as_bytes(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).tobytes()


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return {case: _seed_model(case) for case in SEED_CASES}


def _seed_model(case: str) -> bytes:
    """The .tflite of seed CASE: an int8 grid case, 'int16:' an int16 grid case, 'lstm:' an LSTM of test_lstm."""
    kind, _, name = case.rpartition(":")
    if kind == "int16":
        import op_models_int16

        return op_models_int16.make_case(name)
    if kind == "lstm":
        from test_lstm import _make

        return _make(name)
    return make_case(name)


@pytest.fixture(scope="module")
def worker():
    w = Worker(_serve, RUN_TIMEOUT_S)
    yield w
    w.close()


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory):
    if shutil.which("gcc") is None:
        if os.environ.get("CI"):
            pytest.fail("gcc is missing; make setup installs it")
        pytest.skip("gcc is not installed (apt-get install gcc)")
    return _Sanitized(tmp_path_factory.mktemp("asan_kernels"))


def check_mutant(data: bytes, desc: str, rng, path: str, worker: Worker, sanitized: _Sanitized, workdir: Path,
                 host_library: bool = False) -> tuple[str, str]:
    """(outcome, failure or ''): outcome is 'refused', 'no reference' (TFLM will not run it), 'bit-exact' or 'bug'.
    HOST_LIBRARY also runs the library build_for_host makes (a full -O2 build of the kernels: ~1 s)."""
    from tinyeff.codegen import compile_model

    try:
        info = read_model(data, "mutant")
        compiled = compile_model(data, info, "mutant", path=path)
    except TinyeffError as e:
        if not str(e) or "\n" in str(e):
            return "bug", f"{desc}: refused without one sentence: {e!r}"
        return "refused", ""
    except Exception:
        return "bug", f"{desc}: compile_model raised\n{traceback.format_exc(limit=-4)}"
    x = _inputs(info, rng)
    status, want = worker.call(("tflm", data, x, None, ""))
    if status != "ok":
        return "no reference", ""
    want = _as_bytes(want)
    ok, got = sanitized.run(compiled, path, x, workdir / "asan")
    if not ok:
        return "bug", f"{desc}: the sanitized build failed: {got}"
    if got != want:
        return "bug", f"{desc}: the sanitized build's outputs differ from TFLM's"
    if host_library:
        status, got = worker.call(("host", data, x, str(workdir / "host"), path))
        if status != "ok":
            return "bug", f"{desc}: build_for_host: {got}"
        if _as_bytes(got) != want:
            return "bug", f"{desc}: build_for_host's outputs differ from TFLM's"
    return "bit-exact", ""


@pytest.mark.parametrize("case", SEED_CASES)
def test_mutants_are_refused_or_bit_exact(case, seeds, worker, sanitized, tmp_path):
    base, paths = seeds[case], host_paths()
    for path in paths:  # the seed itself, repacked as every mutant is, must compile and be bit-exact
        outcome, failure = check_mutant(pack(unpack(base)), f"{case} repacked, on the {path} path", np.random.default_rng(0), path,
                                        worker, sanitized, tmp_path / f"base_{path}")
        assert outcome == "bit-exact", failure or outcome
    outcomes, failures = {}, []
    for k in range(MUTANTS_PER_CASE):
        rng = np.random.default_rng([SEED_CASES.index(case), k])
        data, desc = mutant(base, rng)
        path = paths[k % len(paths)]
        # the sanitized program runs every mutant; the host library, the first that runs (its build is the slow part)
        outcome, failure = check_mutant(data, f"{case} mutant {k} on the {path} path ({desc})", rng, path, worker, sanitized,
                                        tmp_path / str(k), host_library="bit-exact" not in outcomes)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if failure:
            failures.append(failure)
    assert not failures, f"{len(failures)} of {MUTANTS_PER_CASE} mutants broke the compiled runtime:\n\n" + "\n\n".join(failures[:8])
    # the fuzzer reached both sides: some mutants are refused, and some still run and are compared
    assert outcomes.get("refused", 0) >= 5 and outcomes.get("bit-exact", 0) >= 3, outcomes
