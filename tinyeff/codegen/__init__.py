"""The compiled runtime: an int8 .tflite lowered ahead of time to C99 with a static memory plan."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tinyeff.codegen.emit import emit_c
from tinyeff.codegen.host import HostModel, build_host
from tinyeff.codegen.lower import SUPPORTED_OPS, LoweredModel, check_compilable, lower
from tinyeff.codegen.plan import MemoryPlan, plan_memory
from tinyeff.footprint.tflite_file import ModelInfo
from tinyeff.model_io import io_tensors


@dataclasses.dataclass(frozen=True)
class CompiledModel:
    model: LoweredModel
    plan: MemoryPlan
    sources: dict  # file name -> C text

    def write(self, directory: Path) -> None:
        for name, text in self.sources.items():
            (Path(directory) / name).write_text(text)


def compile_model(data: bytes, info: ModelInfo, model_name: str, board: str = "host", inplace: bool = True,
                  path: str = "generic") -> CompiledModel:
    """Lower, plan and emit MODEL as C with kernel PATH; any model the compiled runtime cannot run raises TinyeffError."""
    lowered = lower(data, info, path)
    plan = plan_memory(lowered, inplace=inplace)
    return CompiledModel(lowered, plan, emit_c(lowered, plan, model_name, board))


def build_for_host(data: bytes, info: ModelInfo, workdir: Path, model_name: str = "model", path: str = "generic") -> HostModel:
    """Compile MODEL with kernel PATH and build it as a shared library in WORKDIR for host-side runs
    ('dsp' runs on the host through the portable forms of its SIMD primitives)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    compiled = compile_model(data, info, model_name, path=path)
    compiled.write(workdir)
    return build_host(workdir, workdir / "libtinyeff_model.so", *io_tensors(info), path)


__all__ = ["SUPPORTED_OPS", "CompiledModel", "HostModel", "LoweredModel", "MemoryPlan", "build_for_host",
           "check_compilable", "compile_model", "lower", "plan_memory"]
