"""tinyeff generate: an int8 .tflite and a board become a complete firmware project.

The compiled runtime's project for a board the kit can build offline (the QEMU boards, which
have a [baremetal] section) holds the generated model C, a copy of the kernels, protocol and
board port from firmware/, a linker script and a Makefile for the Debian arm-none-eabi-gcc, a
README, and the tinyeff.json manifest. The project is rendered into a temporary directory and
renamed into place, so a failure leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tinyeff import __version__
from tinyeff.atomic import write_run
from tinyeff.boards import Board, all_boards, get_board
from tinyeff.codegen import CompiledModel, compile_model
from tinyeff.errors import TinyeffError
from tinyeff.footprint import load_model_file, require_int8
from tinyeff.render import header, render
from tinyeff.resources import resource_dir

MANIFEST = "tinyeff.json"
RUNTIMES = ("compiled",)
STACK_BYTES = 4096  # the firmware's stack; kernels use a few hundred bytes, measured by te-mem
# firmware/ files each compiled-runtime bare-metal project carries, under src/tinyeff/
FIRMWARE_FILES = ("kernels/tinyeff_kernels.c", "kernels/tinyeff_kernels.h", "protocol/te_protocol.c",
                  "protocol/te_protocol.h", "protocol/te_port.h", "ports/cmsdk/te_port_cmsdk.c")


def _tensor(t) -> dict:
    return {"shape": list(t.shape), "dtype": t.dtype.lower(), "scale": t.scales[0] if t.scales else 0.0,
            "zero_point": t.zero_points[0] if t.zero_points else 0}


def manifest(model_name: str, board: Board, runtime: str, compiled: CompiledModel) -> dict:
    info = compiled.model.info
    return {
        "tinyeff_version": __version__,
        "model": model_name,
        "model_file": f"model/{model_name}",
        "model_sha256": info.sha256,
        "model_bytes": info.size_bytes,
        "runtime": runtime,
        "board": board.id,
        "input": _tensor(info.input()),
        "output": _tensor(info.output()),
        "ops": list(info.op_names),
        "layers": [{"index": l.index, "op": l.op, "in_place": l.index in compiled.plan.inplace} for l in compiled.model.layers],
        "arena_bytes": compiled.plan.arena_bytes,
        "memory_plan": compiled.plan.to_json(compiled.model),
    }


def _check_fits(compiled: CompiledModel, board: Board, model_name: str) -> None:
    if compiled.plan.arena_bytes > board.model_ram_bytes:
        raise TinyeffError(
            f"'{model_name}' needs a {compiled.plan.arena_bytes:,}-byte arena but {board.id} leaves {board.model_ram_bytes:,} bytes "
            f"of RAM for a model; shrink the model (tinyeff shrink --ram-kib) or choose a larger board")
    weights = compiled.model.info.weight_bytes
    if weights > board.model_flash_bytes:
        raise TinyeffError(
            f"'{model_name}' has {weights:,} bytes of weights but {board.id} leaves {board.model_flash_bytes:,} bytes of flash "
            f"for a model; shrink the model (tinyeff shrink --flash-kib) or choose a larger board")


def generate(model_path: Path, board_id: str, runtime: str, out: Path, force: bool = False) -> Path:
    """Render the project for MODEL_PATH on BOARD_ID into OUT; returns OUT."""
    board = get_board(board_id)
    if runtime not in RUNTIMES:
        raise TinyeffError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    if board.baremetal is None:
        raise TinyeffError(
            f"{board.id} is built with PlatformIO ({board.platformio.platform}/{board.platformio.board}), which this version "
            f"does not generate yet; generate for a QEMU board ({', '.join(_baremetal_ids())}) instead")
    out = Path(out)
    if out.exists() and not force:
        what = "a project tinyeff generated" if (out / MANIFEST).is_file() else "a directory tinyeff did not create"
        raise TinyeffError(f"'{out}' already exists ({what}); choose another --out or pass --force to replace it")
    data, info = load_model_file(Path(model_path))
    require_int8(info)
    name = Path(model_path).name
    compiled = compile_model(data, info, name, board.id)
    _check_fits(compiled, board, name)
    man = manifest(name, board, runtime, compiled)
    values = dict(header=header(name, info.sha256, board.id), board=board, manifest=man, stack_bytes=STACK_BYTES,
                  input_bytes=compiled.model.tensor_bytes[compiled.model.input])
    with write_run(out, force=force) as tmp:
        (tmp / "src").mkdir()
        compiled.write(tmp / "src")
        firmware = resource_dir("firmware")
        for rel in FIRMWARE_FILES:
            dst = tmp / "src" / "tinyeff" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(firmware / rel, dst)
        (tmp / "Makefile").write_text(render("baremetal/Makefile.j2", **values))
        (tmp / "link.ld").write_text(render("baremetal/link.ld.j2", **values))
        (tmp / "README.md").write_text(render("baremetal/README.md.j2", **values))
        (tmp / "model").mkdir()
        (tmp / man["model_file"]).write_bytes(data)  # the host reference for benches of this firmware
        (tmp / MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
    return out


def _baremetal_ids() -> list[str]:
    return [b.id for b in all_boards().values() if b.baremetal is not None]
