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


def _text_frontend_build(model_dir, data: bytes) -> list[str]:
    """The options and sources that add a text front end to the fuzz build (te-raw-put, te-raw-run),
    with a projection that fills the model's input as a projection model's would."""
    from tinyeff.frontend import HEADER, TextFrontend
    from tinyeff.model_io import io_tensors
    from tinyeff.models.projection_features import ProjectionConfig

    t = io_tensors(read_model(data, "dense_relu"))[0][0]
    tokens = max(d for d in range(1, 9) if t.bytes % d == 0)
    (model_dir / HEADER).write_text(TextFrontend(ProjectionConfig(t.bytes // tokens, tokens, 3), t.scale, t.zero_point).header("fuzz"))
    fw = resource_dir("firmware")
    return ["-DTE_RAW_FRONTEND", f"-I{fw / 'frontend'}", str(fw / "frontend" / "te_projection.c")]


@pytest.mark.parametrize("frontend", [False, True], ids=["tensor-input", "text-frontend"])
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
    if frontend:  # the upload path of raw text, its length and UTF-8 checks and the projection into the input
        kernels += _text_frontend_build(tmp_path, data)
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
