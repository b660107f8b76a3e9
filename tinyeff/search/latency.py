"""A trial's latency as the emulated board runs it: the compiled-runtime firmware generated, built
and benched in QEMU on a few validation samples, median emulated instructions (QEMU -icount:
instructions, not a board's cycles or time)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import numpy as np

from tinyeff.boards import get_board
from tinyeff.errors import TinyeffError

LATENCY_SAMPLES = 4  # -icount makes every run of one input take the same count; a few inputs cover data-dependent paths


def require_emulated(board_id: str) -> None:
    board = get_board(board_id)
    if board.emulator is None:
        raise TinyeffError(f"--latency measures on an emulated board and {board.id} is a real one; "
                           "give --latency-board qemu-mps2-an386 (or another qemu board)")


def emulated_instructions(tflite: bytes, board_id: str, x: np.ndarray, y: np.ndarray) -> float:
    """Median emulated instructions per inference of the int8 model TFLITE on BOARD_ID, over the
    first LATENCY_SAMPLES of X (float features; quantized here as the model's input takes them)."""
    from tinyeff.compress.quantize import quantize_input
    from tinyeff.footprint import read_model
    from tinyeff.generate import generate
    from tinyeff.harness.bench import Project, run_bench
    from tinyeff.harness.dut import Dut
    from tinyeff.harness.flash import open_devices

    info = read_model(tflite, "trial model")
    t = info.tensors[info.inputs[0]]
    xq = quantize_input(x[:LATENCY_SAMPLES], t.scales[0], t.zero_points[0])
    with tempfile.TemporaryDirectory(prefix="tinyeff-latency-") as tmp:
        model = Path(tmp) / "model.int8.tflite"
        model.write_bytes(tflite)
        project = Project.load(generate(model, board_id, "compiled", Path(tmp) / "firmware"))
        with contextlib.ExitStack() as stack:
            duts = [Dut(device) for device in open_devices(project, [], None, 1, stack)]
            duts[0].wait_ready()
            result = run_bench(project, duts, xq, np.asarray(y[:LATENCY_SAMPLES]))
    if result.errors or result.exact_agreement < 1.0:
        raise TinyeffError(f"the emulated {board_id} did not run the trial's model bit-exactly with host TFLM "
                           f"({result.errors} errors, {100 * result.exact_agreement:.0f} % exact); report it as a bug")
    return float(result.latency_median)
