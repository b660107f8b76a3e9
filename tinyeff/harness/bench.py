"""tinyeff bench: a test set through a generated firmware on a device, judged against host TFLM.

Every sample ends as a result or as a named error. A device reset in the middle of a sample
sends that sample again (the result is only recorded once the CRC-checked reply is in, so
nothing is counted twice); a corrupted exchange is retried by the Dut; a HardFault or a
firmware built from another model stops the bench with that reason.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

import numpy as np

from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from tinyeff.harness.dut import DeviceError, DeviceFault, DeviceReset, Dut
from tinyeff import model_io
from tinyeff.model_io import IoTensor, io_tensors
from tinyeff.reference import tflm_run

MANIFEST = "tinyeff.json"
RESETS_PER_SAMPLE = 3
ERRORS_IN_A_ROW = 3  # then the device is gone, not noisy: stop instead of timing out on every sample


@dataclasses.dataclass(frozen=True)
class Project:
    """What a bench needs from a generated project directory."""

    path: Path
    manifest: dict
    model: bytes

    @classmethod
    def load(cls, path: Path) -> "Project":
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise TinyeffError(f"'{path}' is not a tinyeff project (no {MANIFEST}); create one with 'tinyeff generate'")
        manifest = json.loads((path / MANIFEST).read_text())
        return cls(path, manifest, (path / manifest["model_file"]).read_bytes())

    @property
    def elf(self) -> Path:
        return self.path / "build" / "firmware.elf"


@dataclasses.dataclass(frozen=True)
class SampleResult:
    index: int
    label: int  # -1 when the data has no labels
    output: list | None  # the device's output 0 values (in its type: int8, int16, int32 or float32)
    reference: list  # host TFLM's output 0 values for the same input
    ticks: int | None  # device timer ticks for the inference
    latency: float | None = None  # the same in BenchResult.latency_unit
    error: str | None = None
    exact: bool = False  # every output's bytes equal host TFLM's


@dataclasses.dataclass(frozen=True)
class LayerTime:
    index: int
    op: str
    latency: float  # in BenchResult.latency_unit


@dataclasses.dataclass(frozen=True)
class BenchResult:
    board: str
    runtime: str
    model_sha256: str
    device: str
    samples: int
    accuracy: float | None  # device top-1 (output 0) against the labels; None without labels
    host_accuracy: float | None  # host TFLM top-1 against the labels
    exact_agreement: float  # share of samples whose output bytes equal host TFLM's
    top1_agreement: float
    latency_unit: str  # "emulated instructions" for emulators, "cycles" for boards
    latency_median: float
    latency_min: float
    latency_max: float
    latency_us_median: float | None  # boards only: emulated time is not a board's time
    timer: str
    layers: list[LayerTime]
    arena_bytes: int | None  # None: te-mem could not be read (see missing)
    arena_used_bytes: int | None
    stack_bytes: int | None
    missing: list[str]  # extras the device did not deliver, and why
    resets: int
    retries: int
    errors: int
    results: list[SampleResult]

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _top1(outputs: list[list[int]]) -> np.ndarray:
    return np.array([int(np.argmax(o)) for o in outputs])


def run_bench(project: Project, dut: Dut, device, x, y: np.ndarray,
              progress: Callable[[int, int], None] | None = None) -> BenchResult:
    """Run every sample of X on DUT: one array per model input (or one array for a one-input model), first
    axis = samples, in each input's type; Y holds the labels (-1 where there are none)."""
    man = project.manifest
    sig = dut.signature()
    if sig.sha256 != man["model_sha256"]:
        raise TinyeffError(f"the device runs firmware for model {sig.sha256[:16]} ({sig.runtime}, {sig.board}) but "
                           f"{project.path} is for {man['model_sha256'][:16]}; flash this project first (tinyeff flash)")
    xs = [x] if isinstance(x, np.ndarray) else list(x)
    inputs = tuple(IoTensor.from_json(t) for t in man["inputs"])
    outputs = tuple(IoTensor.from_json(t) for t in man["outputs"])
    sent = model_io.pack(inputs, xs)
    reference = tflm_run(project.model, xs)
    wanted = model_io.pack(outputs, reference)  # the bytes the device must send back, sample by sample
    reference0 = reference[0].reshape(len(sent), -1)
    timer, hz, _ = dut.timer()  # the timer's rate converts each sample's ticks as it comes in
    results: list[SampleResult] = []
    resets = 0
    for i in range(len(sent)):
        ref = reference0[i].tolist()
        for attempt in range(RESETS_PER_SAMPLE + 1):
            try:
                inference = dut.run(sent[i].tobytes())
                got = inference.output.view(np.uint8)
                output = model_io.unpack(outputs, got[None])[0].reshape(-1).tolist() if got.size == wanted.shape[1] else []
                results.append(SampleResult(i, int(y[i]), output, ref, inference.ticks,
                                            device.ticks_to_latency(inference.ticks, hz), exact=got.tobytes() == wanted[i].tobytes()))
                break
            except DeviceReset:
                resets += 1
                dut.resync()
            except DeviceFault:
                raise
            except DeviceError as e:
                results.append(SampleResult(i, int(y[i]), None, ref, None, error=str(e)))
                break
        else:
            results.append(SampleResult(i, int(y[i]), None, ref, None,
                                        error=f"the device reset {RESETS_PER_SAMPLE + 1} times on this sample"))
        if len(results) >= ERRORS_IN_A_ROW and all(r.error for r in results[-ERRORS_IN_A_ROW:]):
            raise TinyeffError(f"the device failed {ERRORS_IN_A_ROW} samples in a row (samples {i - ERRORS_IN_A_ROW + 1}..{i}), "
                               f"last: {results[-1].error}")
        if progress:
            progress(i + 1, len(sent))
    # per-layer ticks and memory are extras: one that cannot be read is named, and the samples stay
    missing: list[str] = []
    try:
        layer_ticks = dut.layer_ticks()  # of the last inference
    except DeviceFault:
        raise
    except DeviceError as e:
        layer_ticks = []
        missing.append(f"per-layer ticks: {e}")
    try:
        memory = dut.memory()
    except DeviceFault:
        raise
    except DeviceError as e:
        memory = None
        missing.append(f"memory use: {e}")
    done = [r for r in results if r.output is not None]
    lat = np.array([r.latency for r in done]) if done else np.zeros(1)
    ops = [l["op"] for l in man["layers"]]
    n = max(len(done), 1)
    labelled = bool(len(y)) and bool((np.asarray(y) >= 0).all())
    return BenchResult(
        board=man["board"], runtime=man["runtime"], model_sha256=man["model_sha256"], device=device.url,
        samples=len(results),
        accuracy=float(sum(bool(r.output) and int(np.argmax(r.output)) == r.label for r in done) / len(results)) if labelled else None,
        host_accuracy=float((reference0.argmax(axis=1) == y).mean()) if labelled else None,
        exact_agreement=float(sum(r.exact for r in done) / len(results)),
        top1_agreement=float(sum(bool(r.output) and int(np.argmax(r.output)) == int(np.argmax(r.reference)) for r in done) / n),
        latency_unit=device.latency_unit,
        latency_median=float(np.median(lat)), latency_min=float(lat.min()), latency_max=float(lat.max()),
        latency_us_median=None if device.latency_unit != "cycles" else float(np.median([r.ticks for r in done]) * 1e6 / hz),
        timer=timer,
        layers=[LayerTime(k, ops[k] if k < len(ops) else "?", device.ticks_to_latency(t, hz)) for k, t in enumerate(layer_ticks)],
        arena_bytes=memory and memory.arena_bytes, arena_used_bytes=memory and memory.arena_used_bytes,
        stack_bytes=memory and memory.stack_bytes, missing=missing, resets=resets, retries=dut.retried,
        errors=len(results) - len(done), results=results,
    )


def bench_inputs(data: str, model: bytes, lang: str = "en", limit: int | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The test inputs of MODEL (one array per model input, first axis = samples, in the input's type) and
    their labels (-1 where there are none) from DATA: an .npz file with one array per input name (and
    optionally 'labels'), a run directory (its test split, projected for text models) or any dataset tinyeff
    train accepts (not text: that needs the run's projection). LIMIT keeps the first samples only."""
    inputs, _ = io_tensors(read_model(model))
    if str(data).endswith(".npz"):
        xs, y = _npz_inputs(Path(data), inputs)
    elif len(inputs) > 1:
        raise TinyeffError(f"the model takes {len(inputs)} inputs ({', '.join(repr(t.name) for t in inputs)}); give them as "
                           "an .npz file with one array per input name (first axis = samples) and optionally 'labels'")
    else:
        x, y = _dataset_inputs(data, inputs[0], lang)
        xs = [x]
    if limit is not None:
        xs, y = [a[:limit] for a in xs], y[:limit]
    return xs, y


def _npz_inputs(path: Path, inputs: tuple[IoTensor, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise TinyeffError(f"cannot read '{path}' as an .npz file ({e}); save the inputs with numpy.savez") from None
    missing = [t.name for t in inputs if t.name not in arrays and not (len(inputs) == 1 and "x" in arrays)]
    if missing:
        raise TinyeffError(f"'{path}' has no array for input {', '.join(map(repr, missing))} (it has {', '.join(map(repr, arrays))}); "
                           "name each array after the model input it feeds")
    xs = [arrays[t.name] if t.name in arrays else arrays["x"] for t in inputs]
    for t, a in zip(inputs, xs):
        if a.dtype != np.dtype(t.dtype) or a.shape[1:] != t.sample_shape:
            raise TinyeffError(f"'{path}' input {t.name!r} is {a.dtype} {list(a.shape[1:])} per sample; the model takes "
                               f"{t.dtype} {list(t.sample_shape)}: quantize it first (real / scale + zero point)")
    n = len(xs[0])
    if any(len(a) != n for a in xs):
        raise TinyeffError(f"the arrays of '{path}' hold different numbers of samples; give every input the same")
    y = arrays.get("labels", np.full(n, -1))
    if len(y) != n:
        raise TinyeffError(f"'{path}' has {len(y)} labels for {n} samples; give one label per sample")
    return xs, np.asarray(y).astype(np.int64)


def _dataset_inputs(data: str, t: IoTensor, lang: str) -> tuple[np.ndarray, np.ndarray]:
    """The test split of a run or a dataset, quantized as the model's one input takes it."""
    from tinyeff.compress.quantize import quantize_input
    from tinyeff.data import load_dataset
    from tinyeff.train.run import CONFIG, Run, features_of

    if (Path(data) / CONFIG).is_file():
        run = Run.load(Path(data))
        x = features_of(run.spec, run.data.x_test)
        y = run.data.y_test
    else:
        dataset = load_dataset(data, lang=lang)
        if dataset.kind == "text":
            raise TinyeffError(f"'{data}' is text, which must be projected as the model was trained; pass the run directory "
                               "(--data RUN) instead")
        x, y = dataset.x_test, dataset.y_test
    if tuple(x.shape[1:]) != t.sample_shape:
        raise TinyeffError(f"the samples of '{data}' have shape {list(x.shape[1:])} but the model takes {list(t.sample_shape)}; "
                           "bench with the data the model was trained on")
    if t.dtype == "float32":  # the model quantizes its own input
        return np.asarray(x, np.float32), np.asarray(y)
    if t.dtype != "int8":
        raise TinyeffError(f"the model takes {t.dtype} input; tinyeff quantizes datasets to int8 only: give the inputs as an .npz file")
    return quantize_input(x, t.scale, t.zero_point), np.asarray(y)


# ------------------------------------------------------------ reports


def write_json(result: BenchResult, path: Path) -> None:
    Path(path).write_text(json.dumps(result.to_json(), indent=1) + "\n")


def write_junit(result: BenchResult, path: Path, min_accuracy: float | None = None) -> None:
    """JUnit XML for CI: one test case per sample (bit-exact with host TFLM, or its error) and one
    for the accuracy bar when one is given."""
    from xml.sax.saxutils import quoteattr

    cases = []
    for r in result.results:
        name = quoteattr(f"sample-{r.index}")
        if r.error:
            cases.append(f'  <testcase classname="tinyeff.bench" name={name}><error message={quoteattr(r.error)}/></testcase>')
        elif not r.exact:
            msg = quoteattr(f"device output {r.output} differs from host TFLM {r.reference}")
            cases.append(f'  <testcase classname="tinyeff.bench" name={name}><failure message={msg}/></testcase>')
        else:
            cases.append(f'  <testcase classname="tinyeff.bench" name={name}/>')
    if min_accuracy is not None:
        if result.accuracy is None:
            raise TinyeffError("--min-accuracy needs labelled data; give 'labels' in the .npz file or drop --min-accuracy")
        body = "" if result.accuracy >= min_accuracy else \
            f"<failure message={quoteattr(f'accuracy {result.accuracy:.4f} is below {min_accuracy:.4f}')}/>"
        cases.append(f'  <testcase classname="tinyeff.bench" name="accuracy">{body}</testcase>')
    failures = sum("<failure" in c for c in cases)
    errors = sum("<error" in c for c in cases)
    suite = quoteattr(f"tinyeff bench {result.board} {result.runtime}")
    Path(path).write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={suite} tests="{len(cases)}" '
                          f'failures="{failures}" errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def write_plot(result: BenchResult, path: Path) -> None:
    """Latency distribution and per-layer latency, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.hist([r.latency for r in result.results if r.latency is not None], bins=30, color="#3b6ea5")
    a.set_xlabel(f"{result.latency_unit} per inference")
    a.set_ylabel("samples")
    a.set_title(f"{result.board}: {result.samples} samples")
    b.barh([f"{l.index} {l.op}" for l in result.layers], [l.latency for l in result.layers], color="#c0504d")
    b.invert_yaxis()
    b.set_xlabel(f"{result.latency_unit} (last inference)")
    b.set_title("per layer")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
