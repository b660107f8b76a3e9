"""pyproject.toml's dependencies: the host oracles are pinned, and this environment has what it names."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def _requirements() -> dict[str, Requirement]:
    deps = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    return {r.name: r for r in map(Requirement, deps)}


def test_host_oracles_are_pinned():
    """Bit-exactness is judged against host TFLM and LiteRT: a new build of either may change the
    reference, so neither floats. tflite-micro has only nightly builds: one exact build."""
    reqs = _requirements()
    micro, litert = list(reqs["tflite-micro"].specifier), list(reqs["ai-edge-litert"].specifier)
    assert [s.operator for s in micro] == ["=="] and "*" not in micro[0].version, reqs["tflite-micro"]
    # one minor release line of LiteRT: its bug fixes, not its next interpreter
    assert [s.operator for s in litert] == ["=="] and litert[0].version.count(".") == 2 and litert[0].version.endswith(".*"), reqs["ai-edge-litert"]


def test_the_environment_has_the_pinned_versions():
    for name, req in _requirements().items():
        try:
            have = version(name)
        except PackageNotFoundError:
            raise AssertionError(f"{name} is not installed; run make setup") from None
        assert req.specifier.contains(have, prereleases=True), f"{name} {have} is installed, pyproject.toml asks {req}"
