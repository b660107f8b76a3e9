"""Where the third-party models are: shared/models beside the clone.

Mutation runs (scripts/mutation.py) run the tests from a copy of the clone one or more levels
further down, so the nearest ancestor that has shared/models wins."""

from __future__ import annotations

from pathlib import Path


def _find() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents[1:]:
        if (parent / "shared" / "models").is_dir():
            return parent / "shared" / "models"
    return here.parents[2] / "shared" / "models"


SHARED_MODELS = _find()
