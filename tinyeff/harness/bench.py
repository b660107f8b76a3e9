"""tinyeff bench: a test set through a generated firmware on a device, judged against host TFLM.

Every sample ends as a result or as a named error. A device reset in the middle of a sample
sends that sample again (the result is only recorded once the CRC-checked reply is in, so
nothing is counted twice); a corrupted exchange is retried by the Dut; a HardFault or a
firmware built from another model stops the bench with that reason.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import threading
import time
import zipfile
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
_RAW_INPUT = {"text": "UTF-8 text", "audio": "16-bit PCM"}
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
    device: str = ""  # the URL of the device that ran it
    resets: int = 0  # device resets while this sample ran (it was sent again after each)
    retries: int = 0  # exchanges of this sample sent again after a damaged or lost reply
    frontend_latency: float | None = None  # the device's front end on the raw sample (raw-text benches), before the model


@dataclasses.dataclass(frozen=True)
class LayerTime:
    index: int
    op: str
    latency: float  # in BenchResult.latency_unit


@dataclasses.dataclass(frozen=True)
class DeviceSummary:
    """One device of a bench over several."""

    url: str
    samples: int  # samples it finished (results and per-sample errors)
    errors: int
    latency_median: float | None  # None: it finished no sample
    latency_min: float | None
    latency_max: float | None
    stopped: str | None  # why it was taken out of the bench before the end, if it was


@dataclasses.dataclass(frozen=True)
class BenchResult:
    board: str
    runtime: str
    model_sha256: str
    inputs_sha256: str  # of the inputs and labels benched: a resumed bench must be given the same
    device: str  # the devices' URLs, comma-separated
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
    wall_seconds: float  # the samples' part of the bench, start to end (a resumed bench: this run's part)
    devices: list[DeviceSummary]
    results: list[SampleResult]
    synthetic_data: str = ""  # how the benched data was made when it is not recorded ('tinyeff data tts')
    raw_input: str = ""  # what the device was sent instead of the model's input tensor ("UTF-8 text", "16-bit PCM"), run through its front end
    frontend_latency_median: float | None = None
    coded_exchanges: int = 0  # exchanges sent coded (each byte three times) while the link damaged bytes
    inputs_from_host_file: bool = False  # every device read its inputs from a host file (te-fput), not over the link

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _packed_inputs(project: Project, x) -> np.ndarray:
    """The bytes each sample's inputs go up as, one row per sample."""
    xs = [x] if isinstance(x, np.ndarray) else list(x)
    return model_io.pack(tuple(IoTensor.from_json(t) for t in project.manifest["inputs"]), xs)


def inputs_sha256(project: Project, x, y: np.ndarray) -> str:
    """What identifies a bench's inputs: the bytes sent, sample by sample, and the labels."""
    h = hashlib.sha256(np.ascontiguousarray(_packed_inputs(project, x)).tobytes())
    h.update(np.asarray(y, np.int64).tobytes())
    return h.hexdigest()


class _Shared:
    """The state the threads of a bench over several devices share, under one condition: the samples
    still to run, the results so far, and who is still benching."""

    def __init__(self, todo: list[int], done: list[SampleResult], total: int, urls: list[str], on_sample, progress):
        self.cond = threading.Condition()
        self.todo = collections.deque(todo)
        self.results = {r.index: r for r in done}
        self.total, self.on_sample, self.progress = total, on_sample, progress
        # sample -> the devices it failed on so far: a failed sample goes back to the queue for a device still
        # in the bench that has not tried it, and only for such a device (the same device again would count
        # as another try, and its repeated failures would send a sound device out of the bench)
        self.tried_by: dict[int, set[str]] = collections.defaultdict(set)
        self.failed_last: dict[int, SampleResult] = {}  # a queued sample's failure, reported if no device is left to try it
        self.benching = set(urls)  # devices still taking samples
        self.running = 0  # samples being run now: one that fails may come back to the queue
        self.stopped: dict[str, str] = {}  # device URL -> why it left the bench
        self.failure: BaseException | None = None  # what ends the whole bench

    def untried_by_any(self, i: int) -> bool:
        """Whether a device still in the bench has not yet tried sample I."""
        return bool(self.benching - self.tried_by[i])

    def next_for(self, url: str) -> int | None:
        """The first queued sample the device on URL has not tried."""
        return next((i for i in self.todo if url not in self.tried_by[i]), None)

    def record(self, r: SampleResult) -> None:
        self.results[r.index] = r
        if self.on_sample:
            self.on_sample(r)
        if self.progress:
            self.progress(len(self.results), self.total)


def check_signature(project: Project, dut: Dut) -> None:
    """One sentence when the device on DUT runs firmware for another model than PROJECT's."""
    sig, want = dut.signature(), project.manifest["model_sha256"]
    if sig.sha256 != want:
        raise TinyeffError(f"the device on {dut.device.url} runs firmware for model {sig.sha256[:16]} ({sig.runtime}, "
                           f"{sig.board}) but {project.path} is for {want[:16]}; flash this project first (tinyeff flash)")


def run_bench(project: Project, duts: list[Dut], x, y: np.ndarray,
              progress: Callable[[int, int], None] | None = None,
              on_sample: Callable[[SampleResult], None] | None = None,
              done: list[SampleResult] = (), raw: list[bytes] | None = None) -> BenchResult:
    """Run every sample of X on the devices of DUTS (each takes the next sample when it is free, so a
    fast board does more): X is one array per model input (or one array for a one-input model), first
    axis = samples, in each input's type; Y holds the labels (-1 where there are none). DONE: results of
    an earlier, interrupted bench of the same inputs, not run again; ON_SAMPLE is called with each new
    result as it comes in (a report that grows). RAW (a project with a front end): the samples X was made
    from (UTF-8 sentences, 16-bit PCM clips), sent instead of X; the device's outputs are still judged
    against host TFLM on X, so a bit-exact bench proves the device's front end equal to the host's."""
    man = project.manifest
    if raw is not None and not man.get("frontend"):
        raise TinyeffError(f"{project.path} has no front end; generate it with --frontend RUN to bench from raw samples")
    for dut in duts:
        check_signature(project, dut)
    xs = [x] if isinstance(x, np.ndarray) else list(x)
    outputs = tuple(IoTensor.from_json(t) for t in man["outputs"])
    sent = _packed_inputs(project, xs)
    reference = tflm_run(project.model, xs)
    wanted = model_io.pack(outputs, reference)  # the bytes the device must send back, sample by sample
    reference0 = reference[0].reshape(len(sent), -1)
    clocks = {id(dut): dut.timer() for dut in duts}  # each timer's rate converts its samples' ticks as they come in
    kept = {r.index for r in done}
    shared = _Shared([i for i in range(len(sent)) if i not in kept], list(done), len(sent), [d.device.url for d in duts], on_sample, progress)

    def sample(dut: Dut, i: int) -> SampleResult:
        """Sample I on DUT, sent again after each device reset (up to RESETS_PER_SAMPLE)."""
        ref, label, device = reference0[i].tolist(), int(y[i]), dut.device
        retried = dut.retried
        for resets in range(RESETS_PER_SAMPLE + 1):
            try:
                inference = dut.run_raw(raw[i]) if raw is not None else dut.run(sent[i].tobytes())
            except DeviceReset:
                dut.resync()
                continue
            except DeviceFault:
                raise
            except DeviceError as e:
                return SampleResult(i, label, None, ref, None, error=str(e), device=device.url, resets=resets,
                                    retries=dut.retried - retried)
            got = inference.output.view(np.uint8)
            output = model_io.unpack(outputs, got[None])[0].reshape(-1).tolist() if got.size == wanted.shape[1] else []
            hz = clocks[id(dut)][1]
            frontend = None if inference.frontend_ticks is None else device.ticks_to_latency(inference.frontend_ticks, hz)
            return SampleResult(i, label, output, ref, inference.ticks, device.ticks_to_latency(inference.ticks, hz),
                                exact=got.tobytes() == wanted[i].tobytes(), device=device.url, resets=resets,
                                retries=dut.retried - retried, frontend_latency=frontend)
        return SampleResult(i, label, None, ref, None, error=f"the device reset {RESETS_PER_SAMPLE + 1} times on this sample",
                            device=device.url, resets=RESETS_PER_SAMPLE + 1, retries=dut.retried - retried)

    started = time.monotonic()
    if len(duts) == 1:
        _bench_on(duts[0], sample, shared)
    else:
        threads = [threading.Thread(target=_bench_on, args=(dut, sample, shared), daemon=True) for dut in duts]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C: the devices finish the sample they run and stop
            with shared.cond:
                shared.todo.clear()
                shared.cond.notify_all()
            raise
    wall = time.monotonic() - started
    if shared.failure is not None:
        raise shared.failure
    results = [shared.results[i] for i in sorted(shared.results)]
    if len(shared.stopped) == len(duts):
        raise TinyeffError("; ".join(f"the device on {url} {why}" for url, why in shared.stopped.items())
                           + f"; {sum(r.error is None for r in results)} of {len(sent)} samples finished (a --json report "
                           "keeps them: --resume runs the rest); check the device and the link")

    # per-layer ticks and memory are extras, read from a device still in the bench: one that cannot be
    # read is named, and the samples stay
    dut = next(d for d in duts if d.device.url not in shared.stopped)
    retried = dut.retried
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
    missing += [f"device {url} left the bench: {why}" for url, why in shared.stopped.items()]
    timer, hz, _ = clocks[id(dut)]
    finished = [r for r in results if r.output is not None]
    lat = np.array([r.latency for r in finished]) if finished else np.zeros(1)
    ops = [l["op"] for l in man["layers"]]
    n = max(len(finished), 1)
    labelled = bool(len(y)) and bool((np.asarray(y) >= 0).all())
    return BenchResult(
        board=man["board"], runtime=man["runtime"], model_sha256=man["model_sha256"], inputs_sha256=inputs_sha256(project, xs, y),
        device=", ".join(d.device.url for d in duts), samples=len(results),
        accuracy=float(sum(bool(r.output) and int(np.argmax(r.output)) == r.label for r in finished) / len(results)) if labelled else None,
        host_accuracy=float((reference0.argmax(axis=1) == y).mean()) if labelled else None,
        exact_agreement=float(sum(r.exact for r in finished) / len(results)),
        top1_agreement=float(sum(bool(r.output) and int(np.argmax(r.output)) == int(np.argmax(r.reference)) for r in finished) / n),
        latency_unit=dut.device.latency_unit,
        latency_median=float(np.median(lat)), latency_min=float(lat.min()), latency_max=float(lat.max()),
        latency_us_median=None if dut.device.latency_unit != "cycles" else float(np.median([r.ticks for r in finished]) * 1e6 / hz),
        timer=timer,
        layers=[LayerTime(k, ops[k] if k < len(ops) else "?", dut.device.ticks_to_latency(t, hz)) for k, t in enumerate(layer_ticks)],
        arena_bytes=memory and memory.arena_bytes, arena_used_bytes=memory and memory.arena_used_bytes,
        stack_bytes=memory and memory.stack_bytes, missing=missing,
        resets=sum(r.resets for r in results), retries=sum(r.retries for r in results) + dut.retried - retried,
        errors=len(results) - len(finished), wall_seconds=wall, devices=[_summary(d.device.url, results, shared.stopped) for d in duts],
        results=results, raw_input=_RAW_INPUT[man["frontend"]["type"]] if raw is not None else "",
        frontend_latency_median=float(np.median(fe)) if (fe := [r.frontend_latency for r in finished
                                                                 if r.frontend_latency is not None]) else None,
        coded_exchanges=sum(d.coded for d in duts),
        inputs_from_host_file=all(d.host_file is not None for d in duts),
    )


def _bench_on(dut: Dut, sample, shared: _Shared) -> None:
    """One device's share of a bench: the next queued sample it has not tried, until none is left and
    none is running. A sample that fails on one device goes back to the queue while a device still in the
    bench has not tried it; it is reported failed once none has. A device that fails ERRORS_IN_A_ROW
    samples in a row is gone, not noisy: it leaves the bench."""
    url = dut.device.url
    failed: list[int] = []
    try:
        while True:
            with shared.cond:
                # a sample queued for another device, or one running now that may fail and come back: wait
                while (i := shared.next_for(url)) is None and (shared.todo or shared.running) and shared.failure is None:
                    shared.cond.wait()
                if i is None or shared.failure is not None:
                    return
                shared.todo.remove(i)
                shared.running += 1
            r = sample(dut, i)
            with shared.cond:
                shared.running -= 1
                shared.tried_by[i].add(url)
                failed = failed + [i] if r.error else []
                if r.error and shared.untried_by_any(i):
                    shared.todo.append(i)
                    shared.failed_last[i] = r
                else:
                    shared.record(r)
                shared.cond.notify_all()
                if len(failed) >= ERRORS_IN_A_ROW:
                    shared.stopped[url] = f"failed samples {', '.join(map(str, failed))} in a row, the last with: {r.error}"
                    return
    except BaseException as e:  # a HardFault, a closed link: the whole bench ends with it
        with shared.cond:
            shared.failure = shared.failure or e
    finally:
        with shared.cond:
            shared.benching.discard(url)
            # samples that waited for this device alone have now been tried by every device left
            for i in [i for i in shared.todo if i in shared.failed_last and not shared.untried_by_any(i)]:
                shared.todo.remove(i)
                shared.record(shared.failed_last.pop(i))
            shared.cond.notify_all()


def _summary(url: str, results: list[SampleResult], stopped: dict[str, str]) -> DeviceSummary:
    mine = [r for r in results if r.device == url]
    lat = [r.latency for r in mine if r.latency is not None]
    return DeviceSummary(url, len(mine), sum(r.error is not None for r in mine),
                         float(np.median(lat)) if lat else None, min(lat) if lat else None, max(lat) if lat else None,
                         stopped.get(url))


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


def bench_raw(data: str, project: Project, limit: int | None = None) -> list[bytes]:
    """The samples of DATA's test split before the front end (sentences as UTF-8, clips as 16-bit PCM),
    as PROJECT's front end takes them, in the order bench_inputs gives the model inputs made from them.
    DATA must be the run the model came from: its front end is checked against the one the firmware carries."""
    from tinyeff.frontend import frontend_from_json, frontend_of
    from tinyeff.train.run import CONFIG, Run

    fe = frontend_from_json(project.manifest["frontend"])
    if not (Path(data) / CONFIG).is_file():
        raise TinyeffError(f"{project.path} takes raw {fe.raw_input}, and '{data}' is not a run directory; bench it with --data RUN, "
                           "the run whose samples and front end the model was trained on")
    if frontend_of(Path(data), *io_tensors(read_model(project.model)), "the model").to_json() != project.manifest["frontend"]:
        raise TinyeffError(f"the front end of '{data}' differs from the one {project.path} was generated with; bench with the run "
                           "given to generate --frontend")
    run = Run.load(Path(data))
    samples = run.data.x_test if run.data.kind == "text" else run.data.raw_test
    if samples is None:
        raise TinyeffError(f"the split of '{data}' keeps no raw test samples; train it again with --audio-frontend fixed or micro")
    if limit is not None:
        samples = samples[:limit]
    return [fe.raw(s) for s in samples]


def _npz_inputs(path: Path, inputs: tuple[IoTensor, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # a cut or damaged zip raises the last two
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


def data_synthetic(data: str) -> str:
    """How DATA (a run directory or a .wav folder) was made, when a generator made it; empty otherwise."""
    from tinyeff.data.audio import folder_synthetic
    from tinyeff.train.run import CONFIG, Run

    path = Path(data)
    if (path / CONFIG).is_file():
        return Run.load(path).data.synthetic
    return folder_synthetic(path) if path.is_dir() else ""


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
