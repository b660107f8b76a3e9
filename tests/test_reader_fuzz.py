"""The .tflite reader and `tinyeff inspect` over damaged files: every input ends in a result or a
TinyeffError of one sentence, never another exception.

Seeds are real models: the third-party ones in shared/models and small converter-made ones. The
reader runs under atheris (libFuzzer's engine plus tflite_mutate's structure-aware mutations) in a
subprocess (tests/reader_fuzz_run.py), so that a crash is saved as a file and named by the failure. The full
`inspect` path, which also loads the model into the host TFLM interpreter, runs fewer mutants in a
worker process, so that a crash is a failure the test names instead of the end of pytest. TFLM's
release build checks little and aborts or crashes on some damaged ops (an op code swapped for
another op's, a MEAN whose axis is not a constant): the kit measures the arena in a child process
(tinyeff/footprint/contained.py), so those end as one sentence too. What the kit can tell is wrong
before TFLM sees it (offsets outside the file, indices past the tensors, impossible quantization,
weights shorter than their shape) it must refuse itself: the targeted mutants below each do one.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import traceback

import numpy as np
import pytest

import reader_fuzz_run
import tflite_mutate
from shared_models import SHARED_MODELS
from model_edit import edit
from op_models import make_case
from test_model_fuzz import mutant
from worker import Worker

INSPECT_MUTANTS = 500
TIMEOUT_S = 60


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    if not any(SHARED_MODELS.glob("*.tflite")) and os.environ.get("CI"):
        pytest.fail(f"no third-party models in {SHARED_MODELS} (CI always has shared/ beside the clone)")
    return reader_fuzz_run.seeds()


def test_reader_survives_fuzzing(seeds, tmp_path):
    try:
        import atheris  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("atheris is missing; make setup installs the test extras")
        pytest.skip("atheris is not installed (pip install -e '.[test]')")
    if not any(SHARED_MODELS.glob("*.tflite")) and os.environ.get("CI"):
        pytest.fail(f"no third-party models in {SHARED_MODELS} (CI always has shared/ beside the clone)")
    run = reader_fuzz_run.FuzzRun(tmp_path / "fuzz", seeds)  # the module's seeds: made once for both tests
    rc, log, found = run.wait()
    why = log[log.find("=== Uncaught"):][:4000] if "=== Uncaught" in log else log[-4000:]
    assert rc == 0 and not found, f"the reader failed on {found} (in {run.workdir}):\n{why}"
    assert f"Done {reader_fuzz_run.FUZZ_RUNS} runs" in log, log[-2000:]


# ---- `tinyeff inspect` in a worker process


def _serve(conn) -> None:
    from tinyeff.cli import main

    while True:
        try:
            path = conn.recv()
        except EOFError:
            return
        err = io.StringIO()
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = main(["inspect", path])
            conn.send((rc, err.getvalue()))
        except BaseException:  # anything but TinyeffError (which main turns into exit code 2) is a kit bug
            conn.send((None, traceback.format_exc()))


@pytest.fixture(scope="module")
def inspector():
    """`tinyeff inspect` in a worker: (exit code, stderr), (None, traceback), or ('crash', how)."""
    w = Worker(_serve, TIMEOUT_S)
    yield w.call
    w.close()


def _targeted(data: bytes) -> dict[str, bytes]:
    """DATA (a model with per-channel weights) with damage the kit can see and TFLM's release build
    would not: it aborts on an impossible scale and reads past a vector or the file on the rest."""

    def tensor(g, per_channel: bool = False):
        return next(t for t in g.tensors if t.quantization is not None and t.quantization.scale is not None
                    and len(t.quantization.scale) > per_channel)

    def negative_scale(m, g):
        tensor(g).quantization.scale[0] = -0.5

    def nan_scale(m, g):
        tensor(g).quantization.scale[0] = np.nan

    def few_zero_points(m, g):
        tensor(g, per_channel=True).quantization.zeroPoint = np.zeros(2, np.int64)

    def short_weights(m, g):
        t = tensor(g, per_channel=True)
        m.buffers[t.buffer].data = m.buffers[t.buffer].data[:-4]

    def input_index(m, g):
        g.operators[0].inputs[0] = len(g.tensors) + 3

    def no_outputs(m, g):
        g.operators[0].outputs = np.array([], np.int32)

    def opcode_index(m, g):
        g.operators[0].opcodeIndex = len(m.operatorCodes) + 1

    def buffer_index(m, g):
        g.tensors[0].buffer = len(m.buffers) + 5

    changes = (negative_scale, nan_scale, few_zero_points, short_weights, input_index, no_outputs, opcode_index, buffer_index)
    return {f.__name__: edit(data, f) for f in changes} | {"truncated": data[:len(data) // 2]}


def test_inspect_refuses_or_reports_every_mutant(seeds, inspector, tmp_path):
    seed = "conv_k3x3_s2_same_relu_d1"
    cases = [(f"{what} in {seed}", data) for what, data in _targeted(seeds[seed]).items()]
    names = list(seeds)
    for k in range(INSPECT_MUTANTS):
        name = names[k % len(names)]
        if k % 3 == 0:  # schema-level edits (shapes, scales, options, wiring), as tests/test_model_fuzz.py makes them
            data, desc = mutant(seeds[name], np.random.default_rng([7, k]))
        else:  # fields and vector bytes of the file itself
            rng, data = random.Random(k), seeds[name]
            for _ in range(rng.randint(1, 3)):
                data = tflite_mutate.structured(data, rng)
            desc = "offsets, lengths and vector bytes"
        cases.append((f"{name} mutant {k} ({desc})", data))
    outcomes, failures, contained = {}, [], []
    for k, (desc, data) in enumerate(cases):
        path = tmp_path / f"mutant_{k}.tflite"
        path.write_bytes(data)
        rc, err = inspector(str(path))
        targeted = k < len(cases) - INSPECT_MUTANTS
        if rc == "crash":
            failures.append(f"{path} ({desc}) ended the process: {err}")
        elif rc is None:
            failures.append(f"{path} ({desc}) raised:\n{err[-1500:]}")
        elif rc != 0 and (rc != 2 or len(err.strip().splitlines()) != 1 or not err.startswith("tinyeff: error: ")):
            failures.append(f"{path} ({desc}) exited {rc} without one sentence:\n{err[-1500:]}")
        elif targeted and rc != 2:
            failures.append(f"{path} ({desc}) was not refused")
        elif rc == 2 and "crashed (" in err:
            (failures if targeted else contained).append(f"{path} ({desc}): {err.strip()}")
        outcomes[rc] = outcomes.get(rc, 0) + 1
    assert not failures, f"{len(failures)} of {len(cases)} models broke `tinyeff inspect`:\n\n" + "\n\n".join(failures[:8])
    # both sides reached; TFLM's own crashes on damaged ops, contained, stay the exception (9 in 3,000 before)
    assert outcomes.get(0, 0) >= INSPECT_MUTANTS // 10 and outcomes.get(2, 0) >= INSPECT_MUTANTS // 10, outcomes
    assert len(contained) <= INSPECT_MUTANTS // 100, "TFLM crashed on:\n" + "\n".join(contained)
    print(f"{len(contained)} TFLM crashes contained:", *contained, sep="\n")


def test_offsets_that_alias_are_refused_before_they_are_unpacked(monkeypatch):
    """A vector of 50,000 offsets to one subgraph: every read is inside the file, but unpacking it
    would build 50,000 subgraphs (the fuzzer met such a file, and the reader took 2.4 GB)."""
    import tracemalloc

    from model_edit import pack, unpack
    from tinyeff.errors import TinyeffError
    from tinyeff.footprint import read_model

    m = unpack(make_case("conv_k3x3_s2_same_relu_d1"))
    graph = m.subgraphs[0]
    packed, pack_graph = {}, type(graph).Pack
    # the schema's Pack writes each list entry anew; this writes the subgraph once and points at it again
    def pack_once(self, builder):
        if id(self) not in packed:
            packed[id(self)] = pack_graph(self, builder)
        return packed[id(self)]

    monkeypatch.setattr(type(graph), "Pack", pack_once)
    m.subgraphs = [graph] * 50_000
    data = pack(m)
    monkeypatch.undo()
    assert len(data) < 300_000
    tracemalloc.start()
    try:
        with pytest.raises(TinyeffError, match="point into each other"):
            read_model(data, "aliased")
        assert tracemalloc.get_traced_memory()[1] < 200 * 2**20
    finally:
        tracemalloc.stop()
