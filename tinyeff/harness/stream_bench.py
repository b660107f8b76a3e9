"""A keyword stream benched on a device: a long recording played hop by hop, the device's outputs and
reports against the host simulation (tinyeff/stream.py on host TFLM), and both scored against the
recording's truth (detections, false accepts per hour, latency)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tinyeff.data.recording import Recording
from tinyeff.errors import TinyeffError
from tinyeff.harness.bench import Project, check_signature
from tinyeff.harness.dut import Dut
from tinyeff.model_io import IoTensor
from tinyeff.stream import StreamRun, StreamScore, detections, hops_in, score, simulate, with_threshold

# thresholds the bench also scores the device's outputs at: a user picks one from detections against false accepts
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclasses.dataclass(frozen=True)
class StreamBench:
    board: str
    runtime: str
    device: str
    seconds: float
    synthetic: str
    hops: int
    inferences: int
    every: int
    exact_inferences: int      # inferences whose int8 outputs equal the host simulation's
    reports_equal: bool        # the device reported the very keywords, at the very hops, the host did
    device_score: StreamScore
    host_score: StreamScore
    reports: list[dict]        # the device's: time_s, label
    sweep: list[dict]          # threshold, hits, keywords, false_accepts, false_accepts_per_hour: the device's outputs
                               # averaged and reported at each threshold of SWEEP (the rules' own arithmetic, on the host)
    latency_unit: str
    model_latency: float       # over the whole recording, in latency_unit
    frontend_latency: float
    timer: str
    retries: int
    wall_seconds: float

    @property
    def exact(self) -> bool:
        return self.exact_inferences == self.inferences and self.reports_equal

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(device_score=self.device_score.to_json(), host_score=self.host_score.to_json(), exact=self.exact)
        return d


def stream_frontend(project: Project):
    """The audio front end of PROJECT with its keyword stream, or one sentence when it has none."""
    from tinyeff.frontend import frontend_from_json

    fe_json = project.manifest.get("frontend") or {}
    front = frontend_from_json(fe_json) if fe_json.get("type") == "audio" else None
    if front is None or front.stream is None:
        raise TinyeffError(f"{project.path} has no keyword stream; generate it with --frontend RUN from a keyword "
                           "classifier trained with --audio-frontend fixed or micro")
    return front


def bench_stream(project: Project, dut: Dut, rec: Recording, progress=None) -> StreamBench:
    """REC through the keyword stream of the device on DUT, in pushes of as many whole hops as its raw
    buffer holds, against the host simulation of the same stream."""
    man = project.manifest
    front = stream_frontend(project)
    fe, st = front.fe, front.stream
    if rec.sample_rate_hz != fe.sample_rate_hz:
        raise TinyeffError(f"the recording is sampled at {rec.sample_rate_hz} Hz and the model's front end at "
                           f"{fe.sample_rate_hz} Hz; resample it first")
    check_signature(project, dut)
    hops = hops_in(rec.pcm, fe)
    if hops < st.every:
        raise TinyeffError(f"the recording is {rec.seconds:.2f} s long, shorter than one inference of the stream "
                           f"({st.every * fe.hop_samples / fe.sample_rate_hz:.2f} s); give a longer one")
    host = simulate(project.model, rec.pcm, fe, front.input_scale, front.input_zero_point, st)
    timer, hz, _ = dut.timer()
    started, retried = time.monotonic(), dut.retried
    if dut.stream_start() != fe.hop_samples:
        raise TinyeffError("the device's stream moves by another hop than the project's front end; flash this project first")
    per_push = max(1, front.max_bytes // (2 * fe.hop_samples))
    outputs, reports, model_ticks, frontend_ticks = [], [], 0, 0
    for first in range(0, hops, per_push):
        n = min(per_push, hops - first)
        push = dut.stream_push(rec.pcm[first * fe.hop_samples : (first + n) * fe.hop_samples].astype("<i2").tobytes(),
                               st.n_classes)
        if push.hops != first + n:
            raise TinyeffError(f"the device's stream has heard {push.hops} hops where {first + n} were sent; it may "
                               "have reset: bench again")
        outputs.append(push.outputs)
        reports += push.reports
        model_ticks += push.ticks
        frontend_ticks += push.frontend_ticks
        if progress:
            progress(first + n, hops)
    device = StreamRun(hops, st.every, np.concatenate(outputs), tuple(reports))
    return StreamBench(
        board=man["board"], runtime=man["runtime"], device=dut.device.url, seconds=rec.seconds, synthetic=rec.synthetic,
        hops=hops, inferences=len(host.outputs), every=st.every,
        exact_inferences=_equal_rows(device.outputs, host.outputs), reports_equal=device.detections == host.detections,
        device_score=_score(device, rec, fe, st.labels), host_score=_score(host, rec, fe, st.labels),
        reports=[{"time_s": t, "label": st.labels[c]} for t, c in device.detection_times(fe)],
        sweep=_sweep(device, rec, fe, st, IoTensor.from_json(man["outputs"][0]).scale),
        latency_unit=dut.device.latency_unit, model_latency=dut.device.ticks_to_latency(model_ticks, hz),
        frontend_latency=dut.device.ticks_to_latency(frontend_ticks, hz), timer=timer, retries=dut.retried - retried,
        wall_seconds=time.monotonic() - started)


def _sweep(device: StreamRun, rec: Recording, fe, st, output_scale: float) -> list[dict]:
    rows = []
    for threshold in SWEEP:
        at = with_threshold(st, threshold, output_scale)
        run = dataclasses.replace(device, detections=detections(device.outputs, device.hops, at))
        s = _score(run, rec, fe, st.labels)
        rows.append({"threshold": threshold, "hits": s.hits, "keywords": s.keywords, "false_accepts": s.false_accepts,
                     "false_accepts_per_hour": s.false_accepts_per_hour})
    return rows


def _equal_rows(a: np.ndarray, b: np.ndarray) -> int:
    if a.shape != b.shape:
        return 0
    return int((a == b).all(axis=1).sum())


def _score(run: StreamRun, rec: Recording, fe, labels: tuple[str, ...]) -> StreamScore:
    return score([(t, labels[c]) for t, c in run.detection_times(fe)], list(rec.events), rec.seconds,
                 tolerance_s=fe.clip_samples / fe.sample_rate_hz)
