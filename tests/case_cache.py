"""Converted test models kept on disk between pytest runs, for mutation testing only.

Mutation testing starts a fresh pytest per mutant; converting the op-grid cases again in each (a
TensorFlow import and about a second per case) cost more than the tests that use them. With
TINYEFF_TEST_CACHE naming a directory, a case is converted once per machine and read back after,
keyed by its name, its seed and the source of the module that defines it (an edited case is made
again), and so is the list of case names. Without the variable nothing is stored: a normal run converts every case it uses.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path


def _store(module_file: str) -> Path | None:
    root = os.environ.get("TINYEFF_TEST_CACHE")
    if not root:
        return None
    source = hashlib.sha256(Path(module_file).read_bytes()).hexdigest()[:16]
    return Path(root) / "cases" / f"{Path(module_file).stem}-{source}"


def _write(stored: Path, data: bytes) -> None:
    stored.parent.mkdir(parents=True, exist_ok=True)
    partial = stored.with_suffix(f".{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(stored)  # several mutants' tests may make the same case at once


def cached_names(module_file: str) -> Callable:
    """Decorator for case_names() -> list[str] in MODULE_FILE: listing the cases builds them, which imports
    TensorFlow (seconds per pytest start, in every test file that parametrizes over them)."""
    def wrap(names: Callable[[], list[str]]) -> Callable[[], list[str]]:
        @functools.wraps(names)
        def cached() -> list[str]:
            store = _store(module_file)
            if store is None:
                return names()
            stored = store / "names.json"  # names may hold spaces: "avgpool_(9, 8)_s1_valid"
            if stored.exists():
                return json.loads(stored.read_text())
            listed = names()
            _write(stored, json.dumps(listed).encode())
            return listed
        return cached
    return wrap


def cached_conversion(module_file: str) -> Callable:
    """Decorator for make_case(name, seed) -> bytes in MODULE_FILE."""

    def wrap(make: Callable[..., bytes]) -> Callable[..., bytes]:
        @functools.lru_cache(maxsize=None)  # many tests in one session share the cases
        @functools.wraps(make)
        def cached(name: str, seed: int = 0) -> bytes:
            store = _store(module_file)
            if store is None:
                return make(name, seed)
            stored = store / f"{name}-{seed}.tflite"
            if stored.exists():
                return stored.read_bytes()
            data = make(name, seed)
            _write(stored, data)
            return data
        return cached
    return wrap
