"""Where the kit's non-Python parts live: firmware sources, Jinja templates, board files.

They sit beside the package in the repository (``pip install -e .``, as ``make setup`` does);
a copy of the package without them cannot generate firmware, and says so.
"""

from __future__ import annotations

from pathlib import Path

from tinyeff.errors import TinyeffError

ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """ROOT/NAME (firmware, templates or boards), or a TinyeffError when the install lacks it."""
    path = ROOT / name
    if not path.is_dir():
        raise TinyeffError(f"tinyeff's '{name}' directory is missing at {path}; install tinyeff from its repository with 'make setup'")
    return path
