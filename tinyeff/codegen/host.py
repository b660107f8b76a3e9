"""Build the compiled runtime for this computer with gcc and run it through ctypes.

Tests and benchmarks run thousands of inputs through the same C that goes onto the board,
compiled with the same warnings-as-errors flags.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from tinyeff import model_io
from tinyeff.codegen import paths
from tinyeff.errors import TinyeffError
from tinyeff.model_io import IoTensor
from tinyeff.resources import resource_dir

C_FLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror")


class HostModel:
    """A compiled model loaded as a shared library."""

    def __init__(self, library: Path, inputs: tuple[IoTensor, ...], outputs: tuple[IoTensor, ...]):
        self._lib = ctypes.CDLL(str(library))
        self._lib.tinyeff_host_run.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int)
        self._lib.tinyeff_host_run.restype = None
        self.arena_bytes = int(self._lib.tinyeff_host_arena_bytes())
        self.inputs, self.outputs = inputs, outputs

    def run_all(self, inputs) -> list[np.ndarray]:
        """Every output (samples first) for INPUTS: one array per model input, first axis = samples."""
        x = model_io.pack(self.inputs, inputs)
        y = np.zeros((len(x), sum(t.bytes for t in self.outputs)), np.uint8)
        self._lib.tinyeff_host_run(x.ctypes.data, y.ctypes.data, len(x))
        return model_io.unpack(self.outputs, y)

    def run(self, inputs: np.ndarray) -> np.ndarray:
        """Output 0 of a one-input model for INPUTS (first axis = samples, in the input's type)."""
        return self.run_all([inputs])[0]


def _kernel_objects(cc: str, path: str) -> list[Path]:
    """PATH's kernels compiled for shared libraries, once per machine and kernel sources: they hold
    nothing of a model (only tinyeff_host.c includes the model's header), and compiling them was
    most of each host build's time (1.4 s of a case's 2 s in the op grid)."""
    kernels = resource_dir("firmware") / "kernels"
    sources = [kernels / f for f in paths.sources(path)]
    key = hashlib.sha256(repr((cc, C_FLAGS, path)).encode())
    for f in sorted(kernels.iterdir()):  # headers too: any of them can change what a source compiles to
        key.update(f.name.encode() + b"\0" + f.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"tinyeff-host-kernels-{os.getuid()}" / key.hexdigest()[:20]
    objects = [cache / (s.stem + ".o") for s in sources]
    if not cache.is_dir():
        cache.parent.mkdir(parents=True, exist_ok=True)
        # built aside and renamed into place, so that a build another process stops halfway is never used
        with tempfile.TemporaryDirectory(dir=cache.parent) as part:
            cmd = [cc, *C_FLAGS, "-fPIC", "-c", f"-I{kernels}", *map(str, sources)]
            r = subprocess.run(cmd, cwd=part, capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"host kernel build failed:\n{' '.join(cmd)}\n{r.stderr}")
            with contextlib.suppress(OSError):  # another process put the same objects there first
                os.rename(part, cache)
                os.mkdir(part)  # for TemporaryDirectory to remove
    return objects


def build_host(model_dir: Path, out: Path, inputs: tuple[IoTensor, ...], outputs: tuple[IoTensor, ...],
               path: str = "generic") -> HostModel:
    """Compile MODEL_DIR's tinyeff_model.c with the kernels of PATH into the shared library OUT and load it."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise TinyeffError("no C compiler found for the host build; install gcc (apt-get install gcc)")
    kernels = resource_dir("firmware") / "kernels"
    host = resource_dir("firmware") / "host"
    cmd = [cc, *C_FLAGS, "-shared", "-fPIC", f"-I{kernels}", f"-I{model_dir}", str(model_dir / "tinyeff_model.c"),
           str(host / "tinyeff_host.c"), *map(str, _kernel_objects(cc, path)), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"host build failed:\n{' '.join(cmd)}\n{r.stderr}")
    return HostModel(out, inputs, outputs)
