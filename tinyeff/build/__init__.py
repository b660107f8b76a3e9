"""tinyeff build: a generated project compiled on this machine, the one way the kit builds.

QEMU boards (a [baremetal] section) build with the project's own Makefile into build/firmware.elf,
the firmware the emulator runs. Real Arm boards build as PlatformIO would (``platformio.py``):
the same files and flags, with the Debian arm-none-eabi-gcc instead of PlatformIO's downloaded
toolchain, into PROJECT/.tinyeff-build/, everything but the Arduino core, which PlatformIO
downloads; that is a check that the project and its TFLM tree build and link, not a firmware to
flash (``tinyeff flash`` runs PlatformIO for that). Boards of other cores (ESP32's Xtensa) need
PlatformIO's toolchain and are refused in one sentence.

A tflm project needs a TFLM tree (create_tflm_tree.py at the pinned commit): --tflm-dir, else a
tree in the PlatformIO project's tflm/ folder, else the tree of the project's last build.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

from tinyeff.boards import Board, get_board
from tinyeff.build import toolchain
from tinyeff.errors import TinyeffError

MANIFEST = "tinyeff.json"
TFLM_MARKER = "tensorflow/lite/micro/micro_interpreter.cc"
CMSIS_NN_KERNELS = "tensorflow/lite/micro/kernels/cmsis_nn"
TREE_RECORD = "tflm-dir"  # in the build folder: the tree the last build used


@dataclasses.dataclass(frozen=True)
class BuildResult:
    project: Path
    board: str
    runtime: str
    system: str  # "make" (QEMU boards) or "platformio" (real boards, without the framework)
    elf: Path
    sizes: toolchain.Sizes
    tflm_dir: Path | None = None
    tflm_kernels: str = ""  # "CMSIS-NN" or "reference", for tflm projects
    compiled: tuple[str, ...] = ()  # platformio: the translation units
    needs_framework: tuple[str, ...] = ()
    left_for_framework: tuple[str, ...] = ()
    rebuilt: int = 0
    warned: int = 0
    log: Path | None = None
    framework: str = ""

    def lines(self) -> list[str]:
        """What the build did, for the command line."""
        tree = f", TFLM from {self.tflm_dir} ({self.tflm_kernels} kernels)" if self.tflm_dir else ""
        if self.system == "make":
            return [f"built {self.elf} for {self.board} ({self.runtime} runtime) with make and {toolchain.version()}{tree}",
                    f"  size: {self.sizes.line()}"]
        lib = sum(not n.startswith("src/") for n in self.compiled)
        return [
            f"built {self.board} ({self.runtime} runtime) as PlatformIO would, with {toolchain.version()} and the flags of "
            f"{self.framework}: {len(self.compiled)} files ({len(self.compiled) - lib} from src/, {lib} from libraries; "
            f"{self.rebuilt} compiled now, {self.warned} of them with warnings, in {self.log}){tree}",
            f"  not compiled, they need the Arduino core's Arduino.h, which only PlatformIO downloads: {', '.join(self.needs_framework)}",
            f"  linked without it from te_protocol_main; left for the framework part: {', '.join(self.left_for_framework) or 'nothing'}",
            f"  size without the Arduino core: {self.sizes.line()} ({self.elf}; not a firmware to flash: 'tinyeff flash' uses PlatformIO)",
        ]


def _manifest(project: Path) -> dict:
    if not (project / MANIFEST).is_file():
        raise TinyeffError(f"'{project}' is not a tinyeff project (no {MANIFEST}); create one with 'tinyeff generate'")
    return json.loads((project / MANIFEST).read_text())


def is_tflm_tree(path: Path) -> bool:
    return (path / TFLM_MARKER).is_file()


def _tflm_tree(project: Path, given: Path | None, record: Path, pio: bool) -> Path:
    """The TFLM tree to build against: GIVEN, the PlatformIO project's tflm/ when it holds one,
    or the one the last build recorded in RECORD."""
    if given is not None:
        given = Path(given).resolve()
        if not is_tflm_tree(given):
            raise TinyeffError(f"'{given}' is not a TFLM tree (no {TFLM_MARKER}); make one with TFLM's create_tflm_tree.py "
                               f"as {project / 'README.md'} says")
        return given
    if pio and is_tflm_tree(project / "tflm"):
        return (project / "tflm").resolve()
    if record.is_file() and is_tflm_tree(Path(record.read_text().strip())):
        return Path(record.read_text().strip())
    raise TinyeffError(f"'{project}' is a TFLM project and needs a TFLM tree; make one with create_tflm_tree.py "
                       f"({project / 'README.md'} gives the commands) and pass it with --tflm-dir DIR")


def _kernels(tree: Path) -> str:
    return "CMSIS-NN" if (tree / CMSIS_NN_KERNELS).is_dir() else "reference"


def _require_arm(board: Board, project: Path) -> None:
    if not board.core.startswith("cortex-m"):
        platform = board.platformio.platform if board.platformio else "its"
        raise TinyeffError(f"{board.id} has a {board.core} core, which the Debian Arm toolchain cannot build for; build it "
                           f"with PlatformIO ('pio run -d {project}'), which installs its {platform} toolchain (network needed)")


def build_project(project: Path, tflm_dir: Path | None = None, jobs: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Build the generated PROJECT for its board; TFLM_DIR is the TFLM tree of a tflm project.
    PROGRESS(done, total) is called as files compile (PlatformIO projects)."""
    project = Path(project).resolve()  # objects remember absolute command lines: the same from any directory
    man = _manifest(project)
    board, runtime = get_board(man["board"]), man["runtime"]
    _require_arm(board, project)
    jobs = jobs or os.cpu_count() or 1
    if board.baremetal is not None:
        return _build_make(project, board, runtime, tflm_dir, jobs)
    return _build_platformio(project, board, runtime, tflm_dir, jobs, progress)


def _build_make(project: Path, board: Board, runtime: str, tflm_dir: Path | None, jobs: int) -> BuildResult:
    if not (project / "Makefile").is_file():
        raise TinyeffError(f"'{project}' has no Makefile; regenerate it with 'tinyeff generate'")
    if shutil.which("make") is None:
        raise TinyeffError("'make' is not installed; install it with 'apt-get install make' (make setup does)")
    toolchain.require_libraries(board.cflags, cxx=runtime == "tflm")
    record = project / "build" / TREE_RECORD
    args, tree = [], None
    if runtime == "tflm":
        tree = _tflm_tree(project, tflm_dir, record, pio=False)
        if record.is_file() and record.read_text().strip() != str(tree):
            shutil.rmtree(project / "build")  # make tracks times, not trees: objects of another tree must go
        args = [f"TFLM_DIR={tree}"]
    r = subprocess.run(["make", "-s", f"-j{jobs}", "-C", str(project), *args], capture_output=True, text=True)
    if r.returncode:
        raise TinyeffError(f"building {project} with make failed; its last lines:\n{r.stderr.strip()[-toolchain.ERROR_TAIL_CHARS:]}")
    elf = project / "build" / "firmware.elf"
    if tree is not None:
        record.write_text(str(tree))
    return BuildResult(project, board.id, runtime, "make", elf, toolchain.sizes(elf), tree, _kernels(tree) if tree else "")


def _build_platformio(project: Path, board: Board, runtime: str, tflm_dir: Path | None, jobs: int, progress) -> BuildResult:
    from tinyeff.build import platformio

    if not (project / "platformio.ini").is_file():
        raise TinyeffError(f"'{project}' has no platformio.ini; regenerate it with 'tinyeff generate'")
    toolchain.tool("gcc")
    record = project / platformio.OUT / TREE_RECORD
    tree = _tflm_tree(project, tflm_dir, record, pio=True) if runtime == "tflm" else None
    libs = platformio.libraries(project, tree)
    if tree is not None:
        _require_matching_kernels(project, tree)
    result = platformio.build(project, board, libs, jobs, progress)
    if tree is not None:
        record.write_text(str(tree))
    return BuildResult(project, board.id, runtime, "platformio", result.elf, result.sizes, tree, _kernels(tree) if tree else "",
                       result.compiled, result.needs_framework, result.left_for_framework, result.rebuilt, result.warned,
                       result.log, result.core.name)


def _require_matching_kernels(project: Path, tree: Path) -> None:
    """tflm/library.json is written for one kind of tree (CMSIS-NN or reference kernels): the tree must be that kind."""
    library = project / "tflm" / "library.json"
    wants = "CMSIS-NN" if "-DCMSIS_NN" in json.loads(library.read_text()).get("build", {}).get("flags", []) else "reference"
    has = _kernels(tree)
    if wants != has:
        raise TinyeffError(f"{library} builds TFLM with {wants} kernels but '{tree}' holds {has} kernels; make the tree with "
                           f"the options in {project / 'README.md'}")
