"""The protocol parser under libFuzzer (clang, ASan + UBSan) for a fixed budget of inputs."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess

import pytest

from tinyeff.codegen import compile_model
from tinyeff.codegen.paths import files
from op_models import make_case
from tinyeff.footprint import read_model
from tinyeff.resources import resource_dir

FUZZ_RUNS = 300_000


def _frontend_build(kind: str, model_dir, data: bytes) -> list[str]:
    """The options and sources that add a front end to the fuzz build (te-raw-put, te-raw-run), with
    settings whose output fills the model's input as a real one's would: a projection of a few tokens,
    or a log-mel of 4 frames of a 128-sample clip (its 256 bytes fit the fuzzer's 512-byte inputs) with a keyword
    stream of one hop per frame."""
    from tinyeff.data.audio import FrontEnd
    from tinyeff.frontend import HEADER, AudioFrontend, TextFrontend
    from tinyeff.model_io import io_tensors
    from tinyeff.models.projection_features import ProjectionConfig
    from tinyeff.stream import stream_settings

    inputs, outputs = io_tensors(read_model(data, "dense_relu"))
    t, o = inputs[0], outputs[0]
    fw = resource_dir("firmware")
    if kind == "text":
        tokens = max(d for d in range(1, 9) if t.bytes % d == 0)
        fe = TextFrontend(ProjectionConfig(t.bytes // tokens, tokens, 3), t.scale, t.zero_point)
    else:  # with the keyword stream (te-stream-start, te-stream-push): the model's outputs taken as class scores
        assert t.bytes % 4 == 0
        audio = FrontEnd(clip_samples=128, window_samples=32, hop_samples=32, fft_size=32, n_mels=t.bytes // 4, n_mfcc=0,
                         arithmetic="fixed")
        labels = ["yes", *(f"_other{i}_" for i in range(o.bytes - 1))]
        fe = AudioFrontend(audio, t.scale, t.zero_point,
                           stream_settings(audio, labels, o.scale, o.zero_point, every_s=audio.hop_samples / audio.sample_rate_hz,
                                           average=2, threshold=0.05, refractory_s=0.004))
    (model_dir / HEADER).write_text(fe.header("fuzz"))
    return ["-DTE_RAW_FRONTEND", f"-I{fw / 'frontend'}", *(str(fw / f) for f in fe.files if f.endswith(".c"))]


@pytest.mark.parametrize("frontend", ["", "text", "audio"], ids=["tensor-input", "text-frontend", "audio-frontend"])
def test_protocol_parser_survives_fuzzing(tmp_path, frontend):
    if shutil.which("clang") is None:
        if os.environ.get("CI"):
            pytest.fail("clang is missing; make setup installs it")
        pytest.skip("clang is not installed (apt-get install clang)")
    # a small model: the parser is under test, and libFuzzer learns the CRCs that let te-run infer
    data = make_case("dense_relu")
    compile_model(data, read_model(data, "dense_relu"), "dense_relu").write(tmp_path)
    fw = resource_dir("firmware")
    exe = tmp_path / "te_protocol_fuzz"
    kernels = [str(fw / "kernels" / f) for f in files("generic") if f.endswith(".c")]
    if frontend:  # the upload path of raw samples, their checks and the front end into the input
        kernels += _frontend_build(frontend, tmp_path, data)
    build = subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
         "-DTE_INFER_MAX=3",  # "infer 999999999" is legal, and would spend the budget on KWS inferences
         f"-I{tmp_path}", f"-I{fw / 'protocol'}", f"-I{fw / 'kernels'}", str(fw / "fuzz" / "te_protocol_fuzz.c"),
         str(fw / "protocol" / "te_protocol.c"), str(tmp_path / "tinyeff_model.c"), *kernels,
         "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    corpus = tmp_path / "corpus"
    shutil.copytree(fw / "fuzz" / "corpus", corpus)
    # libFuzzer writes crash-*, timeout-*, slow-unit-* ... files to -artifact_prefix, else to its
    # working directory (the repository's, under pytest): keep them in the test's own directory
    artifacts, cwd = tmp_path / "artifacts", tmp_path / "cwd"
    artifacts.mkdir()
    cwd.mkdir()
    # Linux carries a process's peak RSS through fork and exec and libFuzzer's RSS limit reads that peak: after
    # the rest of the suite (in whatever order pytest-randomly chose) pytest's own is over 2 GB, so the limit
    # (default 2 GB) is set 2 GB above it
    rss_limit_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024 + 2048
    run = subprocess.run([str(exe), "-seed=1", f"-runs={FUZZ_RUNS}", "-max_len=512", "-timeout=20", f"-rss_limit_mb={rss_limit_mb}",
                          f"-artifact_prefix={artifacts}/", str(corpus)],
                         capture_output=True, text=True, timeout=600, cwd=cwd)
    assert run.returncode == 0, f"{run.stderr[-3000:]}\nartifacts: {sorted(p.name for p in artifacts.iterdir())}"
    assert f"Done {FUZZ_RUNS} runs" in run.stderr
    assert not any(cwd.iterdir())  # nothing escaped the artifact prefix
