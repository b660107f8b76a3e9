"""tinyeff generate: an int8 .tflite and a board become a complete firmware project.

Two runtimes behind one interface (tinyeff_model.h), so the protocol, the ports and the harness
do not care which runs: ``compiled`` (the model lowered to C99 with the kernels in firmware/)
and ``tflm`` (TensorFlow Lite Micro's interpreter, an op resolver with exactly the model's ops,
the arena measured by host TFLM plus a stated margin).

Two build systems: boards the kit builds offline (the QEMU boards, which have a [baremetal]
section) get a Makefile for the Debian arm-none-eabi-gcc and a linker script; real boards get a
PlatformIO project with the Arduino port. Every project carries its model, a README and the
tinyeff.json manifest. It is rendered into a temporary directory and renamed into place, so a
failure leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from tinyeff import __version__
from tinyeff.atomic import write_run
from tinyeff.boards import Board, all_boards, get_board
from tinyeff import tflm
from tinyeff.codegen import compile_model, paths
from tinyeff.codegen.emit import interface_values
from tinyeff.errors import TinyeffError
from tinyeff.frontend import HEADER as FRONTEND_HEADER
from tinyeff.frontend import frontend_of
from tinyeff.model_io import io_tensors
from tinyeff.footprint import host_tflm_arena, load_model_file, require_quantized
from tinyeff.tflm_scratch import cmsis_nn_arena, family_for_core
from tinyeff.render import header, render
from tinyeff.resources import resource_dir

MANIFEST = "tinyeff.json"
RUNTIMES = ("compiled", "tflm")
AUTO = "auto"  # the compiled runtime when it can run the model, else TFLM (saying why)
# What the compiled runtime spends its kernels on: speed takes the board core's SIMD path
# (about 10 KB more code on the Cortex-M4 than the generic C), size the generic C kernels.
OPTIMIZE = ("speed", "size")
STACK_BYTES = 4096  # the bare-metal firmware's stack; kernels use a few hundred bytes, measured by te-mem
# The TFLM tree create_tflm_tree.py makes for a generated project is pinned to this commit of
# tensorflow/tflite-micro: the op resolver API and the arena figures were checked against it.
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"
# TFLM's Makefile options per core, for create_tflm_tree.py (CMSIS-NN kernels on Cortex-M)
TFLM_MAKE_OPTIONS = {
    "cortex-m0plus": "TARGET=cortex_m_generic TARGET_ARCH=cortex-m0plus OPTIMIZED_KERNEL_DIR=cmsis_nn",
    "cortex-m4f": "TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp OPTIMIZED_KERNEL_DIR=cmsis_nn",
    "cortex-m7": "TARGET=cortex_m_generic TARGET_ARCH=cortex-m7+fp OPTIMIZED_KERNEL_DIR=cmsis_nn",
    "cortex-m33": "TARGET=cortex_m_generic TARGET_ARCH=cortex-m33 OPTIMIZED_KERNEL_DIR=cmsis_nn",
    "cortex-m55": "TARGET=cortex_m_generic TARGET_ARCH=cortex-m55 OPTIMIZED_KERNEL_DIR=cmsis_nn",
}
# firmware/ files a project carries under src/tinyeff/, by what it is built with and its runtime
PROTOCOL_FILES = ("protocol/te_protocol.c", "protocol/te_protocol.h", "protocol/te_port.h")
PORT_FILES = {"make": ("ports/cmsdk/te_port_cmsdk.c",), "platformio": ("ports/arduino/te_port_arduino.cpp",)}


def manifest(model_name: str, info, board: Board, runtime: str, arena_bytes: int, layers: list[dict], extra: dict) -> dict:
    inputs, outputs = io_tensors(info)
    return {
        "tinyeff_version": __version__,
        "model": model_name,
        "model_file": f"model/{model_name}",
        "model_sha256": info.sha256,
        "model_bytes": info.size_bytes,
        "runtime": runtime,
        "board": board.id,
        # each input and output by name, with its place in the bytes the protocol sends and receives
        "inputs": [t.to_json() for t in inputs],
        "outputs": [t.to_json() for t in outputs],
        "ops": list(info.op_names),
        "layers": layers,
        "arena_bytes": arena_bytes,
        **extra,
    }


@dataclasses.dataclass(frozen=True)
class RuntimeFootprint:
    """What one runtime needs for a model, as generate would size it; or why it cannot run it."""

    runtime: str
    flash_bytes: int  # tflm: the .tflite; compiled: its constant arrays (kernel code is counted as the firmware's)
    ram_bytes: int  # tflm: host TFLM arena + margin; compiled: its planned arena (stack comes on top)
    unsupported: str = ""  # the reason, when the runtime cannot run the model
    floor_bytes: int = 0  # compiled: the RAM floor of the model's tensors (tinyeff.codegen.plan.floor_bytes)

    def problem_on(self, board: Board) -> str:
        """Why the model does not fit BOARD under this runtime, or '' when it does."""
        if self.unsupported:
            return self.unsupported
        over = [f"{what} {need:,} B > {have:,} B left for a model"
                for what, need, have in (("flash", self.flash_bytes, board.model_flash_bytes),
                                         ("RAM", self.ram_bytes, board.model_ram_bytes)) if need > have]
        return "; ".join(over)

    def to_json(self, board: Board | None) -> dict:
        out = {"supported": not self.unsupported, "flash_bytes": self.flash_bytes, "ram_bytes": self.ram_bytes}
        if self.floor_bytes:
            out["ram_floor_bytes"] = self.floor_bytes
        if self.unsupported:
            out["why"] = self.unsupported
        if board is not None:
            out["fits"] = not self.problem_on(board)
        return out


def runtime_footprints(data: bytes, info, name: str, tflm_arena: int, board: Board | None = None) -> tuple[RuntimeFootprint, RuntimeFootprint]:
    """The TFLM and compiled runtimes' needs for MODEL, sized the way generate sizes them for BOARD
    (its core's kernel path; generic without a board). TFLM_ARENA: the host TFLM interpreter's measured arena."""
    extra = cmsis_nn_arena(info, family_for_core(board.core) if board else "reference").extra_bytes
    tflm_fp = RuntimeFootprint("tflm", info.size_bytes, tflm.arena_bytes(tflm_arena, extra))
    try:
        compiled = compile_model(data, info, name, path=paths.path_for_core(board.core) if board else "generic")
        compiled_fp = RuntimeFootprint("compiled", compiled.model.const_bytes, compiled.plan.arena_bytes + compiled.model.state_bytes,
                                       floor_bytes=compiled.plan.floor_bytes + compiled.model.state_bytes)
    except TinyeffError as e:
        compiled_fp = RuntimeFootprint("compiled", 0, 0, unsupported=str(e))
    return tflm_fp, compiled_fp


def _require_fit(fp: RuntimeFootprint, board: Board, model_name: str) -> None:
    problem = fp.problem_on(board)
    if problem:
        raise TinyeffError(f"'{model_name}' does not fit {board.id} under the {fp.runtime} runtime ({problem}); "
                           f"shrink the model (tinyeff shrink --board {board.id}) or choose a larger board")


def _build_system(board: Board, runtime: str) -> str:
    if board.baremetal is not None:
        return "make"  # the tflm runtime then builds against a TFLM tree given as TFLM_DIR
    if board.platformio.framework != "arduino":
        raise TinyeffError(f"{board.id} builds with PlatformIO's {board.platformio.framework} framework, and tinyeff's firmware "
                           f"has an Arduino port only; choose a board whose PlatformIO manifest supports Arduino "
                           f"({', '.join(_arduino_ids())})")
    return "platformio"


def _compiled_sources(data: bytes, info, name: str, board: Board, runtime: str, optimize: str):
    path = paths.path_for_core(board.core) if optimize == "speed" else "generic"
    compiled = compile_model(data, info, name, board.id, path=path)
    ram = compiled.plan.arena_bytes + compiled.model.state_bytes
    _require_fit(RuntimeFootprint(runtime, compiled.model.const_bytes, ram), board, name)
    layers = [{"index": l.index, "op": l.op, "kernel": l.kernel, "in_place": i in compiled.plan.inplace}
              for i, l in enumerate(compiled.model.layers)]
    man = manifest(name, info, board, runtime, ram, layers,
                   {"optimize": optimize, "kernel_path": path, "state_bytes": compiled.model.state_bytes,
                    "memory_plan": compiled.plan.to_json(compiled.model)})
    return compiled.sources, man


def _tflm_sources(data: bytes, info, name: str, board: Board, runtime: str, optimize: str):
    measured = host_tflm_arena(data, name).total
    cmsis_nn = cmsis_nn_arena(info, family_for_core(board.core))
    arena = tflm.arena_bytes(measured, cmsis_nn.extra_bytes)
    _require_fit(RuntimeFootprint(runtime, info.size_bytes, arena), board, name)
    methods = tflm.resolver_methods(info.op_names)
    layers = [{"index": o.index, "op": o.op, "in_place": False} for o in info.ops]
    man = manifest(name, info, board, runtime, arena, layers, {
        "tflm_arena_measured_bytes": measured, "tflm_arena_margin_bytes": tflm.ARENA_MARGIN_BYTES,
        "tflm_cmsis_nn": {"kernels": cmsis_nn.family, "scratch_bytes": cmsis_nn.scratch_bytes,
                          "scratch_op": cmsis_nn.scratch_op, "persistent_bytes": cmsis_nn.persistent_bytes},
        "tflm_resolver": methods, "tflm_commit": TFLM_COMMIT})
    values = dict(interface_values(info, name, board.id), arena_bytes=arena, layers=info.ops, board=board,
                  methods=methods, ops=list(info.op_names), measured_arena=measured, margin=tflm.ARENA_MARGIN_BYTES,
                  cmsis_nn=cmsis_nn)
    values["size"], values["bytes"] = len(data), _c_bytes(data)
    return {
        "tinyeff_model.h": render("compiled/tinyeff_model.h.j2", **values),
        "tinyeff_model_tflm.cpp": render("tflm/tinyeff_model_tflm.cpp.j2", **values),
        "model_data.c": render("tflm/model_data.c.j2", **values),
    }, man


def _choose_runtime(data: bytes, info, name: str, runtime: str) -> tuple[str, str]:
    """RUNTIME, or for 'auto' the compiled runtime when it can run the model and TFLM otherwise,
    with the compiled runtime's reason ('' when nothing was chosen for the user)."""
    if runtime != AUTO:
        return runtime, ""
    try:
        compile_model(data, info, name)
    except TinyeffError as e:
        reason = str(e).split("; generate it with --runtime tflm")[0]
        return "tflm", f"the compiled runtime cannot run it ({reason})"
    return "compiled", ""


def _c_bytes(data: bytes) -> str:
    return "\n".join("  " + ", ".join(f"0x{b:02x}" for b in data[i : i + 16]) + "," for i in range(0, len(data), 16))


def generate(model_path: Path, board_id: str, runtime: str, out: Path, force: bool = False, optimize: str = "speed",
             frontend: Path | None = None) -> Path:
    """Render the project for MODEL_PATH on BOARD_ID into OUT; returns OUT. OPTIMIZE picks the
    compiled runtime's kernels: the core's SIMD path (speed) or the generic C (size). FRONTEND: the
    run directory of the model, whose front end (text projection, fixed-point audio) the firmware then
    carries (tinyeff.frontend)."""
    board = get_board(board_id)
    if runtime not in RUNTIMES + (AUTO,):
        raise TinyeffError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES + (AUTO,))}")
    if optimize not in OPTIMIZE:
        raise TinyeffError(f"unknown optimization '{optimize}'; choose one of {', '.join(OPTIMIZE)}")
    build = _build_system(board, runtime)
    out = Path(out)
    if out.exists() and not force:
        what = "a project tinyeff generated" if (out / MANIFEST).is_file() else "a directory tinyeff did not create"
        raise TinyeffError(f"'{out}' already exists ({what}); choose another --out or pass --force to replace it")
    data, info = load_model_file(Path(model_path))
    require_quantized(info)
    name = Path(model_path).name
    raw_fe = frontend_of(Path(frontend), *io_tensors(info), name) if frontend is not None else None
    runtime, why = _choose_runtime(data, info, name, runtime)
    sources, man = (_compiled_sources if runtime == "compiled" else _tflm_sources)(data, info, name, board, runtime, optimize)
    if why:
        man["runtime_chosen_because"] = why
    frontend_files: tuple[str, ...] = ()
    if raw_fe is not None:
        man["frontend"] = raw_fe.to_json()
        sources[FRONTEND_HEADER] = raw_fe.header(header(name, info.sha256, board.id))
        frontend_files = raw_fe.files
    kernel_files = tuple(f"kernels/{f}" for f in paths.files(man["kernel_path"])) if runtime == "compiled" else ()
    values = dict(header=header(name, info.sha256, board.id), board=board, manifest=man, stack_bytes=STACK_BYTES,
                  input_bytes=interface_values(info, name, board.id)["input_bytes"], runtime=runtime, tflm_commit=TFLM_COMMIT,
                  tflm_make_options=TFLM_MAKE_OPTIONS.get(board.core, ""),
                  kernel_sources=[f"src/tinyeff/{f}" for f in kernel_files if f.endswith(".c")],
                  frontend_sources=[f"src/tinyeff/{f}" for f in frontend_files if f.endswith(".c")])
    firmware = resource_dir("firmware")
    with write_run(out, force=force) as tmp:
        (tmp / "src").mkdir()
        for file_name, text in sources.items():
            (tmp / "src" / file_name).write_text(text)
        for rel in PROTOCOL_FILES + PORT_FILES[build] + kernel_files + frontend_files:
            dst = tmp / "src" / "tinyeff" / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(firmware / rel, dst)
        if build == "make":
            (tmp / "Makefile").write_text(render("baremetal/Makefile.j2", **values))
            (tmp / "link.ld").write_text(render("baremetal/link.ld.j2", **values))
            (tmp / "README.md").write_text(render("baremetal/README.md.j2", **values))
        else:
            (tmp / "platformio.ini").write_text(render("platformio/platformio.ini.j2", **values))
            (tmp / "src" / "main.cpp").write_text(render("platformio/main.cpp.j2", **values))
            (tmp / "README.md").write_text(render("platformio/README.md.j2", **values))
            if board.platformio.manifest:  # PlatformIO looks for custom boards in the project's boards/
                (tmp / "boards").mkdir()
                shutil.copyfile(resource_dir("boards") / "platformio" / board.platformio.manifest,
                                tmp / "boards" / board.platformio.manifest)
            if runtime == "tflm":
                (tmp / "tflm").mkdir()
                (tmp / "tflm" / "library.json").write_text(render("tflm/library.json.j2", **values))
        (tmp / "model").mkdir()
        (tmp / man["model_file"]).write_bytes(data)  # the host reference for benches of this firmware
        (tmp / MANIFEST).write_text(json.dumps(man, indent=2) + "\n")
    return out


def _arduino_ids() -> list[str]:
    return [b.id for b in all_boards().values() if b.platformio and b.platformio.framework == "arduino"]
