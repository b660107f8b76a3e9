"""The op test grid on every kernel path, in QEMU: one firmware per core holds every case.

Each case of tests/op_models.py, of tests/op_models_int16.py (int16 activations) and the KWS-shaped
models is compiled with the kernel path of the board's core (dsp on the Cortex-M4, M7 and M33, mve
on the M55) into one firmware, its public functions renamed per case. The firmware runs embedded
inputs (random, and the extremes of the input's type) through every case and prints the output
bytes on the UART; each must equal the host TFLM interpreter's. Building the cases together keeps
the grid wide at one build and one QEMU run per core.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import op_models_int16
from op_models import case_names, make_case
from tinyeff.boards import get_board
from tinyeff.codegen import compile_model, paths
from tinyeff.footprint import load_model_file, read_model
from tinyeff.reference import tflm_outputs
from tinyeff.render import render
from tinyeff.resources import resource_dir

BOARDS = ("qemu-mps2-an386", "qemu-mps2-an500", "qemu-mps2-an505", "qemu-mps3-an547")
# per case; the inputs are most of the firmware (the M55 board's 512 KiB ITCM holds all of it: at 12 inputs
# the 80th op case overflowed it, so 10, with the two extremes on top)
RANDOM_INPUTS = 10
CFLAGS = ("-std=c99", "-O2", "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror")


def _inputs(info, seed: int) -> np.ndarray:
    t = info.input()
    rng = np.random.default_rng(seed)
    if t.dtype == "FLOAT32":
        return rng.normal(0, 2, (RANDOM_INPUTS, *t.shape)).astype(np.float32)
    dtype = np.dtype(t.dtype.lower())  # int8, or int16 for the 16x8 cases
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    x = rng.integers(lo, hi + 1, (RANDOM_INPUTS + 2, *t.shape)).astype(dtype)
    x[-2], x[-1] = lo, hi  # the extremes saturate accumulators and activation ranges
    return x


@pytest.fixture(scope="module")
def grid_models(request, kws_like_model):
    """(name, .tflite bytes, inputs, host TFLM outputs) of every grid case, the kit's KWS-shaped model and
    the KWS reference (when shared/ is there: without it the grid still runs; under CI it must be there)."""
    models = [(c, make_case(c)) for c in case_names()] + [("kws_like", kws_like_model.read_bytes())]
    models += [(f"int16_{c}", op_models_int16.make_case(c)) for c in op_models_int16.case_names()]
    try:
        models.append(("kws_ref", load_model_file(request.getfixturevalue("kws_model"))[0]))
    except pytest.skip.Exception:
        pass
    out = []
    for k, (name, data) in enumerate(models):
        info = read_model(data, name)
        x = _inputs(info, seed=100 + k)
        out.append((name, data, x, tflm_outputs(data, x).reshape(len(x), -1)))
    return out


def _c_bytes(b: bytes) -> str:
    return ", ".join(str(v) for v in b) or "0"


def _driver(models) -> str:
    """A te_protocol_main() that runs every case's inputs and prints each output as hex."""
    lines = ['#include <stdint.h>', '#include <string.h>', '#include "te_port.h"', ""]
    for k, (_, _, x, y) in enumerate(models):
        lines += [f"void *g{k}_input(int);", f"const void *g{k}_output(int);", f"void g{k}_invoke(void);",
                  f"static const uint8_t g{k}_in[] = {{{_c_bytes(x.tobytes())}}};"]
    lines += ["typedef struct { void *(*input)(int); const void *(*output)(int); void (*invoke)(void);",
              "  const uint8_t *in; uint32_t n, in_bytes, out_bytes; } te_case_t;",
              "static const te_case_t cases[] = {"]
    for k, (_, _, x, y) in enumerate(models):
        lines.append(f"  {{g{k}_input, g{k}_output, g{k}_invoke, g{k}_in, {len(x)}u, {x[0].nbytes}u, {y[0].nbytes}u}},")
    lines += ["};", "",
              "static void put_str(const char *s) { while (*s) te_port_putc(*s++); }",
              "void te_protocol_main(void) {",
              "  for (uint32_t c = 0; c < sizeof cases / sizeof cases[0]; ++c) {",
              "    for (uint32_t i = 0; i < cases[c].n; ++i) {",
              "      memcpy(cases[c].input(0), cases[c].in + i * cases[c].in_bytes, cases[c].in_bytes);",
              "      cases[c].invoke();",
              "      const uint8_t *y = (const uint8_t *)cases[c].output(0);",
              "      for (uint32_t j = 0; j < cases[c].out_bytes; ++j) {",
              "        te_port_putc(\"0123456789abcdef\"[y[j] >> 4]);",
              "        te_port_putc(\"0123456789abcdef\"[y[j] & 15]);",
              "      }",
              "      put_str(\"\\n\");",
              "    }",
              "  }",
              "  put_str(\"~~~GRID DONE~~~\\n\");",
              "}", ""]
    return "\n".join(lines)


def _compile(cmd: list) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stderr}"


@pytest.mark.emulator
@pytest.mark.parametrize("board_id", BOARDS)
def test_every_grid_case_is_bit_exact_on_the_boards_kernel_path(board_id, grid_models, tmp_path):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            reason = f"{tool} is not installed (make setup installs it)"
            if os.environ.get("CI"):  # CI installs both: a missing tool there is a broken setup, not a skip
                pytest.fail(reason)
            pytest.skip(reason)
    board = get_board(board_id)
    path = paths.path_for_core(board.core)
    fw, kernels = resource_dir("firmware"), resource_dir("firmware") / "kernels"
    arch = [*board.cflags, *CFLAGS, f"-I{kernels}", f"-I{fw / 'protocol'}"]
    objects = []
    for k, (name, data, _, _) in enumerate(grid_models):
        case_dir = tmp_path / f"g{k}"
        case_dir.mkdir()
        compile_model(data, read_model(data, name), name, board_id, path=path).write(case_dir)
        rename = [f"-Dtinyeff_{f}=g{k}_{f}" for f in ("input", "output", "invoke", "arena_used")]
        objects.append(tmp_path / f"g{k}.o")
        _compile(["arm-none-eabi-gcc", *arch, *rename, f"-I{case_dir}", "-c", str(case_dir / "tinyeff_model.c"), "-o", str(objects[-1])])
    (tmp_path / "driver.c").write_text(_driver(grid_models))
    port = [f"-DTE_UART_BASE={board.baremetal.uart_base:#x}u", f"-DTE_UART_RX_IRQ={board.baremetal.uart_rx_irq}",
            f"-DTE_CLOCK_HZ={board.clock_hz}u"]
    sources = [tmp_path / "driver.c", fw / "ports" / "cmsdk" / "te_port_cmsdk.c", *(kernels / f for f in paths.sources(path))]
    for src in sources:
        objects.append(tmp_path / f"{src.stem}.o")
        _compile(["arm-none-eabi-gcc", *arch, *port, "-c", str(src), "-o", str(objects[-1])])
    (tmp_path / "link.ld").write_text(render("baremetal/link.ld.j2", header="op grid", board=board, stack_bytes=8192))
    elf = tmp_path / "grid.elf"
    _compile(["arm-none-eabi-gcc", *board.cflags, "-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs",
              "-Wl,--gc-sections", "-T", str(tmp_path / "link.ld"), *map(str, objects), "-o", str(elf)])
    r = subprocess.run(["qemu-system-arm", "-M", board.emulator.machine, "-display", "none", "-monitor", "none",
                        "-serial", "stdio", "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)],
                       capture_output=True, text=True, timeout=600)
    lines = r.stdout.replace("\r", "").splitlines()
    assert r.returncode == 0 and lines[-1] == "~~~GRID DONE~~~", r.stdout[-2000:] + r.stderr[-2000:]
    got = iter(lines)
    wrong = []
    for name, _, x, want in grid_models:
        outputs = [bytes.fromhex(next(got)) for _ in range(len(x))]
        bad = sum(o != w.tobytes() for o, w in zip(outputs, want))
        if bad:
            wrong.append(f"{name}: {bad}/{len(x)}")
    assert not wrong, f"{path} kernels on {board_id} differ from host TFLM in: {', '.join(wrong)}"
