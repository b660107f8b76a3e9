"""The protocol parser under libFuzzer (clang, ASan + UBSan) for a fixed budget of inputs."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tinyeff.codegen import compile_model
from tinyeff.footprint import load_model_file
from tinyeff.resources import resource_dir

FUZZ_RUNS = 300_000


def test_protocol_parser_survives_fuzzing(kws_model, tmp_path):
    if shutil.which("clang") is None:
        if os.environ.get("CI"):
            pytest.fail("clang is missing; make setup installs it")
        pytest.skip("clang is not installed (apt-get install clang)")
    data, info = load_model_file(kws_model)
    compile_model(data, info, "kws").write(tmp_path)
    fw = resource_dir("firmware")
    exe = tmp_path / "te_protocol_fuzz"
    build = subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
         f"-I{tmp_path}", f"-I{fw / 'protocol'}", f"-I{fw / 'kernels'}", str(fw / "fuzz" / "te_protocol_fuzz.c"),
         str(fw / "protocol" / "te_protocol.c"), str(tmp_path / "tinyeff_model.c"), str(fw / "kernels" / "tinyeff_kernels.c"),
         "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    corpus = tmp_path / "corpus"
    shutil.copytree(fw / "fuzz" / "corpus", corpus)
    run = subprocess.run([str(exe), "-seed=1", f"-runs={FUZZ_RUNS}", "-max_len=512", str(corpus)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"Done {FUZZ_RUNS} runs" in run.stderr
