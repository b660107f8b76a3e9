"""Measured footprint of int8 models: flash bytes, host TFLM arena, MACs."""

from __future__ import annotations

import dataclasses

from tinyeff.footprint.arena import ArenaUse, host_tflm_arena
from tinyeff.footprint.tflite_file import (ModelInfo, OpInfo, TensorInfo, load_model_file, read_model, require_loadable,
                                           require_quantized)


@dataclasses.dataclass(frozen=True)
class Footprint:
    """What a model costs on a TFLM device, every figure measured from the artifact."""

    flash_bytes: int  # the .tflite file as it is stored in flash
    arena: ArenaUse  # host TFLM RecordingMicroAllocator
    macs: int

    @property
    def ram_bytes(self) -> int:
        return self.arena.total

    def to_json(self) -> dict:
        return {
            "flash_bytes": self.flash_bytes,
            "ram_bytes": self.ram_bytes,
            "arena_head_bytes": self.arena.head,
            "arena_tail_bytes": self.arena.tail,
            "macs": self.macs,
        }


def measure(model: bytes, name: str = "model") -> Footprint:
    """Validate MODEL as full-int8 and measure its flash, TFLM arena and MACs."""
    info = read_model(model, name)
    require_quantized(info)
    return Footprint(flash_bytes=len(model), arena=host_tflm_arena(model, name), macs=info.macs)


__all__ = [
    "ArenaUse", "Footprint", "ModelInfo", "OpInfo", "TensorInfo",
    "host_tflm_arena", "load_model_file", "measure", "read_model", "require_loadable", "require_quantized",
]
