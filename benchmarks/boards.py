"""Every Arm board of boards/ with one model: firmware sizes per runtime and, on the QEMU boards, the
model's test split run on the device (bit-exact with host TFLM, accuracy, emulated instructions).
The README's board table.

For each board and runtime the script does what a user does: `tinyeff generate MODEL --board B
--runtime R`, `tinyeff build` (make for QEMU boards; for real boards the PlatformIO project built
offline as PlatformIO would, without the Arduino core, so the size excludes the framework), and on
QEMU boards `tinyeff bench PROJECT --data RUN`. Sizes are `arm-none-eabi-size` text / data / bss of
the ELF; instructions are QEMU's `-icount` counts per inference (median), not a board's cycles.
The TFLM column needs a TFLM tree (`--tflm-dir`, made with create_tflm_tree.py as a TFLM
project's README says); without one it is left out.

    .venv/bin/python benchmarks/boards.py --run demo-out/small [--tflm-dir TREE] [--board B ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
from pathlib import Path

from tinyeff.boards import all_boards
from tinyeff.build import build_project
from tinyeff.cli import main as tinyeff

RUNTIMES = ("compiled", "tflm")


def measure(run: Path, board: str, runtime: str, tflm_dir: Path | None, work: Path) -> str:
    """One cell of the table: the build's sizes and, on a QEMU board, the bench of RUN's test split."""
    project = work / f"{board}-{runtime}"
    with contextlib.redirect_stdout(io.StringIO()):  # its summary and next steps
        assert tinyeff(["generate", str(run / "model.int8.tflite"), "--board", board, "--runtime", runtime,
                        "--out", str(project), "--force"]) == 0
    built = build_project(project, tflm_dir if runtime == "tflm" else None)
    s = built.sizes
    cell = f"{built.system}: {s.text:,} / {s.data:,} / {s.bss:,} B"
    if not all_boards()[board].emulated:
        return cell
    report = work / f"{board}-{runtime}.json"
    with contextlib.redirect_stdout(io.StringIO()):  # the full report; the JSON has what the cell needs
        assert tinyeff(["bench", str(project), "--data", str(run), "--json", str(report), "--quiet"]) == 0
    b = json.loads(report.read_text())
    exact = round(b["exact_agreement"] * b["samples"])
    return (f"{cell}; QEMU: {exact}/{b['samples']} bit-exact, {100 * b['accuracy']:.1f} %, "
            f"{b['latency_median']:,.0f} {b['latency_unit']}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path, help="a train, shrink or search run (its model.int8.tflite and test split)")
    p.add_argument("--tflm-dir", type=Path, help="a TFLM tree for the TFLM column")
    p.add_argument("--board", action="append", help="only this board (repeat for several; default: every Arm board)")
    a = p.parse_args()
    if not (a.run / "model.int8.tflite").is_file():
        p.error(f"'{a.run}' holds no model.int8.tflite; give a train, shrink or search run")
    unknown = sorted(set(a.board or ()) - set(all_boards()))
    if unknown:
        p.error(f"no board {', '.join(unknown)}; 'tinyeff boards' lists them")
    boards = a.board or [b.id for b in all_boards().values() if b.core.startswith("cortex-m")]
    runtimes = RUNTIMES if a.tflm_dir else RUNTIMES[:1]
    print(f"model: {a.run / 'model.int8.tflite'} ({(a.run / 'model.int8.tflite').stat().st_size:,} B)")
    print("| board | core | " + " | ".join(f"{r} runtime" for r in runtimes) + " |")
    print("|---|---|" + "---|" * len(runtimes))
    with tempfile.TemporaryDirectory() as tmp:
        for board in boards:
            cells = [measure(a.run, board, r, a.tflm_dir, Path(tmp)) for r in runtimes]
            print(f"| `{board}` | {all_boards()[board].core} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
