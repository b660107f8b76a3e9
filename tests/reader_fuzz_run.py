"""The reader's fuzz run (libFuzzer under atheris, tests/fuzz_read_model.py) in a process of its own.

Run as a script, this module makes the seed corpus (the third-party models and small converter-made
ones) and then the fuzzer, writing libFuzzer's log and exit code into WORKDIR; a crash is saved
there as a file. It runs while pytest waits, not beside the suite: started when collection ended,
it ran beside the TensorFlow tests, whose two-thread pools slow down when a third busy thread takes
a core, and the one CI run made so took 4.5 minutes longer, not less.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED_CASES = ("conv_k3x3_s2_same_relu_d1", "dw_k3_s1_same_None_m2", "dense_softmax", "add_relu", "concat",
              "tconv_k3_s2_same_relu", "float_io_conv", "mean_gap_keepdims", "pad", "slice_channels")
FUZZ_RUNS = 100_000  # about three minutes on one core of the CI machine
MAX_S = 900


def seeds() -> dict[str, bytes]:
    """The corpus's first inputs: the models in shared/models and the grid cases named above."""
    from op_models import make_case
    from shared_models import SHARED_MODELS

    return {p.stem: p.read_bytes() for p in sorted(SHARED_MODELS.glob("*.tflite"))} | \
        {case: make_case(case) for case in SEED_CASES}


class FuzzRun:
    """One fuzz run in WORKDIR: corpus/, artifacts/ (libFuzzer's crash-* files), log, rc."""

    def __init__(self, workdir: Path, seeds: dict[str, bytes] | None = None):
        """SEEDS: the corpus's first inputs when the caller has them made already (else the run makes them)."""
        self.workdir = workdir
        (workdir / "corpus").mkdir(parents=True, exist_ok=True)
        for name, data in (seeds or {}).items():
            (workdir / "corpus" / f"{name}.tflite").write_bytes(data)
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
        with open(workdir / "driver.log", "w") as log:
            self._proc = subprocess.Popen([sys.executable, __file__, str(workdir)], cwd=workdir, env=env,
                                          stdout=subprocess.DEVNULL, stderr=log)

    def wait(self) -> tuple[int, str, list[str]]:
        """(libFuzzer's exit code, its log, the artifacts it saved), once the run has ended."""
        try:
            self._proc.wait(timeout=MAX_S + 300)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"the reader's fuzz run did not end in {MAX_S + 300} s") from None
        rc_file = self.workdir / "rc"
        if not rc_file.exists():  # the driver itself failed (making the corpus)
            return self._proc.returncode, (self.workdir / "driver.log").read_text(), []
        found = sorted(str(p) for p in (self.workdir / "artifacts").iterdir())
        return int(rc_file.read_text()), (self.workdir / "log").read_text(errors="replace"), found

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def _drive(workdir: Path) -> None:
    corpus, artifacts = workdir / "corpus", workdir / "artifacts"
    corpus.mkdir(exist_ok=True)
    artifacts.mkdir(exist_ok=True)
    if not any(corpus.iterdir()):
        for name, data in seeds().items():
            (corpus / f"{name}.tflite").write_bytes(data)
    # Linux carries a process's peak RSS through fork and exec, and libFuzzer's RSS limit reads that
    # peak: this driver's own (TensorFlow loaded to make the seeds) is already large. 2 GB above it.
    rss_limit_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 2048
    with open(workdir / "log", "w") as log:
        run = subprocess.run([sys.executable, str(HERE / "fuzz_read_model.py"), "-seed=1", f"-runs={FUZZ_RUNS}",
                              f"-max_total_time={MAX_S}", "-timeout=10", f"-artifact_prefix={artifacts}/",
                              f"-rss_limit_mb={rss_limit_mb}", str(corpus)], stdout=log, stderr=subprocess.STDOUT,
                             cwd=workdir)
    (workdir / "rc").write_text(str(run.returncode))


if __name__ == "__main__":
    _drive(Path(sys.argv[1]))
