"""Directories that appear whole or not at all."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tinyeff.errors import TinyeffError


@contextlib.contextmanager
def write_run(out: Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside OUT that becomes OUT only if the block succeeds."""
    out = Path(out)
    if out.exists() and not force:
        raise TinyeffError(f"'{out}' already exists; choose another --out or pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def replace_file(path: Path, data: bytes | str) -> None:
    """Write DATA to PATH so that a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    tmp.replace(path)
