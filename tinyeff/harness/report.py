"""A bench's reports: JSON and JUnit XML written as the samples finish, and a PNG at the end.

While a bench runs, both files are whole documents after every sample (each sample's entry is
added in front of the closing lines), so a bench that is killed - Ctrl-C, a CI job's time
limit, a lost machine - leaves a report a CI system can read, marked ``"complete": false``,
and ``tinyeff bench --resume`` continues from it. When the bench ends, both are rewritten with
the summary (accuracy, latency, memory, counts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path
from xml.sax.saxutils import quoteattr

from tinyeff.atomic import replace_file
from tinyeff.errors import TinyeffError
from tinyeff.harness.bench import BenchResult, SampleResult

_JSON_TAIL = "\n]}\n"
_JUNIT_TAIL = "\n</testsuite>\n"


class _GrowingDocument:
    """A text file made of a head, items and a tail, valid after each item is added: an item is
    written over the tail with a fresh tail after it, in one write."""

    def __init__(self, path: Path, head: str, tail: str, separator: str):
        self.path, self._tail, self._separator = Path(path), tail, separator
        self._items = 0
        replace_file(self.path, head + tail)

    def add(self, item: str) -> None:
        with open(self.path, "r+b") as f:
            f.seek(-len(self._tail.encode()), os.SEEK_END)
            f.write(((self._separator if self._items else "") + "\n" + item + self._tail).encode())
            f.truncate()
        self._items += 1


def _sample_json(r: SampleResult) -> str:
    return json.dumps(dataclasses.asdict(r), separators=(",", ":"))


def _junit_case(r: SampleResult) -> str:
    name = quoteattr(f"sample-{r.index}")
    if r.error:
        return f'  <testcase classname="tinyeff.bench" name={name}><error message={quoteattr(r.error)}/></testcase>'
    if not r.exact:
        msg = quoteattr(f"device output {r.output} differs from host TFLM {r.reference}")
        return f'  <testcase classname="tinyeff.bench" name={name}><failure message={msg}/></testcase>'
    return f'  <testcase classname="tinyeff.bench" name={name}/>'


class Journal:
    """The JSON and JUnit files of a running bench (either may be None), one entry added per sample.
    Safe to call from the threads of a bench over several devices."""

    def __init__(self, json_path: Path | None, junit_path: Path | None, header: dict, done: list[SampleResult]):
        """HEADER: what identifies the bench (model_sha256 and inputs_sha256 among it); DONE: the
        results a resumed bench keeps, written first."""
        self._lock = threading.Lock()
        self._json = self._junit = None
        if json_path:
            head = json.dumps({**header, "complete": False})[:-1] + ', "results": ['
            self._json = _GrowingDocument(Path(json_path), head, _JSON_TAIL, ",")
        if junit_path:
            suite = quoteattr(f"tinyeff bench {header['board']} {header['runtime']} (running)")
            self._junit = _GrowingDocument(Path(junit_path), f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={suite}>',
                                           _JUNIT_TAIL, "")
        for r in done:
            self.add(r)

    def add(self, r: SampleResult) -> None:
        with self._lock:
            if self._json:
                self._json.add(_sample_json(r))
            if self._junit:
                self._junit.add(_junit_case(r))


def resumable(path: Path, model_sha256: str, inputs_sha256: str) -> list[SampleResult]:
    """The finished samples of the report at PATH (also one a killed bench left half-written) when it is
    a bench of the same model on the same inputs; none when there is no report yet. Samples that ended
    in an error are left out: a resumed bench runs them again."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = _salvage(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise TinyeffError(f"'{path}' is not a tinyeff bench report; give --json a new file or drop --resume")
    if doc.get("model_sha256") != model_sha256:
        raise TinyeffError(f"'{path}' reports a bench of another model ({str(doc.get('model_sha256'))[:16]}); "
                           "give --json a new file or drop --resume")
    if doc.get("inputs_sha256") != inputs_sha256:
        raise TinyeffError(f"'{path}' reports a bench of other inputs (another --data or --limit); "
                           "bench with the same ones to resume, or give --json a new file")
    fields = {f.name for f in dataclasses.fields(SampleResult)}
    finished: dict[int, SampleResult] = {}
    for entry in doc["results"]:
        if not isinstance(entry, dict) or set(entry) != fields:
            raise TinyeffError(f"'{path}' holds a sample entry this version of tinyeff does not write; "
                               "give --json a new file or drop --resume")
        r = SampleResult(**entry)
        if r.error is None:
            finished[r.index] = r
    return [finished[i] for i in sorted(finished)]


def _salvage(text: str) -> dict | None:
    """The head and whole sample lines of a JSON report whose last write was cut off."""
    lines = text.split("\n")
    try:
        doc = json.loads(lines[0] + "]}")
    except ValueError:
        return None
    for line in lines[1:]:
        try:
            doc["results"].append(json.loads(line.rstrip().rstrip(",")))
        except ValueError:
            break
    return doc


def write_json(result: BenchResult, path: Path) -> None:
    replace_file(Path(path), json.dumps({**result.to_json(), "complete": True}, indent=1) + "\n")


def write_junit(result: BenchResult, path: Path, min_accuracy: float | None = None) -> None:
    """JUnit XML for CI: one test case per sample (bit-exact with host TFLM, or its error) and one
    for the accuracy bar when one is given."""
    cases = [_junit_case(r) for r in result.results]
    if min_accuracy is not None:
        if result.accuracy is None:
            raise TinyeffError("--min-accuracy needs labelled data; give 'labels' in the .npz file or drop --min-accuracy")
        body = "" if result.accuracy >= min_accuracy else \
            f"<failure message={quoteattr(f'accuracy {result.accuracy:.4f} is below {min_accuracy:.4f}')}/>"
        cases.append(f'  <testcase classname="tinyeff.bench" name="accuracy">{body}</testcase>')
    failures = sum("<failure" in c for c in cases)
    errors = sum("<error" in c for c in cases)
    suite = quoteattr(f"tinyeff bench {result.board} {result.runtime}")
    replace_file(Path(path), f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={suite} tests="{len(cases)}" '
                         f'failures="{failures}" errors="{errors}">\n' + "\n".join(cases) + "\n</testsuite>\n")


def write_plot(result: BenchResult, path: Path) -> None:
    """Latency distribution (per device when there are several) and per-layer latency, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    per_device = {d.url: [r.latency for r in result.results if r.latency is not None and r.device == d.url]
                  for d in result.devices}
    per_device = {url: lat for url, lat in per_device.items() if lat} or {"": []}
    a.hist(list(per_device.values()), bins=30, stacked=True, label=list(per_device))
    if len(per_device) > 1:
        a.legend(fontsize=7)
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
