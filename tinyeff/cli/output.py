"""What the commands print: progress lines, percentages, footprints."""

from __future__ import annotations

import sys
import time

KIB = 1024


class Progress:
    """Progress lines on stderr: rewritten in place on a terminal, one every few seconds in logs."""

    def __init__(self, quiet: bool = False):
        self.quiet, self.tty, self.last = quiet, sys.stderr.isatty(), 0.0

    def __call__(self, line: str, *, final: bool = True) -> None:
        if self.quiet:
            return
        if self.tty:
            sys.stderr.write("\r\033[K" + line + ("\n" if final else ""))
        elif final or time.monotonic() - self.last > 5:
            sys.stderr.write(line + "\n")
            self.last = time.monotonic()
        sys.stderr.flush()

    def transient(self, line: str) -> None:
        self(line, final=False)


def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def footprint_line(fp) -> str:
    return (f"flash {fp.flash_bytes:,} B ({fp.flash_bytes / KIB:.2f} KiB)  RAM {fp.ram_bytes:,} B "
            f"({fp.ram_bytes / KIB:.2f} KiB; activations {fp.arena.head:,}, persistent {fp.arena.tail:,})  MACs {fp.macs:,}")
