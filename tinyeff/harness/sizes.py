"""What a model costs in a firmware: flash and RAM read from the built ELF, not estimated.

The model's share is the firmware minus the same firmware built with an empty model (same
interface, no layers): it holds the weights and requantization constants, the kernels the model
calls, its layer code and its arena; the protocol, port and C library cancel out.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from pathlib import Path

from tinyeff.codegen import lower, plan_memory
from tinyeff.codegen.emit import emit_c
from tinyeff.errors import TinyeffError
from tinyeff.footprint import read_model
from tinyeff.harness.bench import Project
from tinyeff.harness.flash import build

FLASH_SECTIONS = (".text", ".rodata", ".ARM.exidx", ".data")  # .data's initial values live in flash
RAM_SECTIONS = (".data", ".bss")


@dataclasses.dataclass(frozen=True)
class ElfSizes:
    flash_bytes: int
    ram_bytes: int  # static RAM: .data + .bss (the stack is reserved apart)
    sections: dict


def elf_sizes(elf: Path) -> ElfSizes:
    size = shutil.which("arm-none-eabi-size")
    if size is None:
        raise TinyeffError("arm-none-eabi-size is not installed; install binutils-arm-none-eabi (make setup does)")
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return ElfSizes(sum(sections.get(s, 0) for s in FLASH_SECTIONS), sum(sections.get(s, 0) for s in RAM_SECTIONS), sections)


@dataclasses.dataclass(frozen=True)
class ModelCost:
    firmware: ElfSizes
    empty: ElfSizes

    @property
    def flash_bytes(self) -> int:
        return self.firmware.flash_bytes - self.empty.flash_bytes

    @property
    def ram_bytes(self) -> int:
        return self.firmware.ram_bytes - self.empty.ram_bytes


def model_cost(project: Project) -> ModelCost:
    """Build PROJECT and its empty-model twin; the difference is the model's flash and RAM."""
    firmware = elf_sizes(build(project))
    info = read_model(project.model, project.manifest["model"])
    lowered = lower(project.model, info)
    sources = emit_c(lowered, plan_memory(lowered), project.manifest["model"], project.manifest["board"], empty=True)
    with tempfile.TemporaryDirectory(prefix="tinyeff-empty-") as tmp:
        twin = Path(tmp) / "project"
        shutil.copytree(project.path, twin, ignore=shutil.ignore_patterns("build"))
        for name, text in sources.items():
            (twin / "src" / name).write_text(text)
        empty = elf_sizes(build(Project(twin, project.manifest, project.model)))
    return ModelCost(firmware, empty)
