"""Board definitions: boards/<id>.toml loaded into frozen, validated dataclasses.

Unknown keys are errors (a typo must not silently fall back to a default), sizes carry their
unit in the name, and an unknown board id suggests the closest known ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import tomllib
from pathlib import Path

from tinyeff.errors import TinyeffError
from tinyeff.resources import resource_dir

TIMERS = ("dwt", "systick", "fpgaio", "ccount", "micros")  # micros: the Arduino core's micros(), in microseconds
UPLOADS = ("emulator", "stlink", "serial", "picotool", "esptool")


@dataclasses.dataclass(frozen=True)
class PlatformIO:
    platform: str
    board: str
    framework: str
    # a board manifest of the kit's own (boards/platformio/), for boards whose PlatformIO manifest
    # lacks the framework; generated projects carry it in their boards/ folder
    manifest: str = ""


@dataclasses.dataclass(frozen=True)
class BareMetal:
    """What the kit's own startup code and linker script need (boards it builds with make)."""

    flash_origin: int
    ram_origin: int
    uart: str  # "cmsdk"
    uart_base: int
    uart_rx_irq: int  # its receive interrupt's NVIC number: the firmware sleeps (WFI) until a byte comes


@dataclasses.dataclass(frozen=True)
class Emulator:
    kind: str  # "qemu" or "renode"
    machine: str = ""  # QEMU -M
    platform: str = ""  # Renode .repl
    uart: str = ""  # Renode UART peripheral


@dataclasses.dataclass(frozen=True)
class Board:
    id: str
    name: str
    vendor: str
    url: str
    core: str
    cflags: tuple[str, ...]
    clock_hz: int
    flash_kib: int
    ram_kib: int
    app_flash_kib: int  # what the application (protocol, startup, libc) reserves
    app_ram_kib: int
    serial_baud: int
    timer: str
    upload: str
    platformio: PlatformIO | None = None
    baremetal: BareMetal | None = None
    emulator: Emulator | None = None

    @property
    def model_flash_bytes(self) -> int:
        """Flash left for a model once the application's share is taken."""
        return (self.flash_kib - self.app_flash_kib) * 1024

    @property
    def model_ram_bytes(self) -> int:
        return (self.ram_kib - self.app_ram_kib) * 1024

    @property
    def emulated(self) -> bool:
        return self.upload == "emulator"


_SECTIONS = {"platformio": PlatformIO, "baremetal": BareMetal, "emulator": Emulator}


def _build(cls, table: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise TinyeffError(f"{where} has unknown keys {', '.join(unknown)}; allowed: {', '.join(fields)}")
    missing = sorted(n for n, f in fields.items() if n not in table and f.default is dataclasses.MISSING)
    if missing:
        raise TinyeffError(f"{where} lacks {', '.join(missing)}; add them")
    values = {}
    for key, value in table.items():
        if key in _SECTIONS:
            value = _build(_SECTIONS[key], value, f"{where} [{key}]")
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return cls(**values)


def load_board_file(path: Path) -> Board:
    path = Path(path)
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise TinyeffError(f"board file {path} cannot be read ({e}); fix its TOML") from None
    board = _build(Board, table, f"board file {path.name}")
    if board.id != path.stem:
        raise TinyeffError(f"board file {path.name} declares id '{board.id}'; name the file {board.id}.toml")
    if board.timer not in TIMERS or board.upload not in UPLOADS:
        raise TinyeffError(f"board file {path.name}: timer must be one of {', '.join(TIMERS)} and upload one of {', '.join(UPLOADS)}")
    if board.emulated and (board.baremetal is None or board.emulator is None):
        raise TinyeffError(f"board file {path.name} is emulated but lacks its [baremetal] or [emulator] section")
    if not board.emulated and board.platformio is None:
        raise TinyeffError(f"board file {path.name} is a real board but has no [platformio] section")
    if board.platformio and board.platformio.manifest:
        manifest = path.parent / "platformio" / board.platformio.manifest
        if manifest.stem != board.platformio.board or not manifest.is_file():
            raise TinyeffError(f"board file {path.name}: its PlatformIO manifest must be boards/platformio/"
                               f"{board.platformio.board}.json, named after the board it defines")
    return board


@functools.cache
def all_boards() -> dict[str, Board]:
    return {p.stem: load_board_file(p) for p in sorted(resource_dir("boards").glob("*.toml"))}


def get_board(board_id: str) -> Board:
    boards = all_boards()
    if board_id in boards:
        return boards[board_id]
    close = difflib.get_close_matches(board_id, list(boards), n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(close)}?" if close else "run 'tinyeff boards' to list them"
    raise TinyeffError(f"unknown board '{board_id}'; {hint}")
