"""Kernel paths: which C kernel runs a layer on which core, and what buffers it needs.

Every op has a generic kernel in plain C (firmware/kernels/*_generic.c and the single-path op
files). The ops that hold nearly all of a model's multiply-accumulates also have a path per core
family, chosen from the board's ``core``:

- ``dsp``: Cortex-M4, M7 and M33 (the DSP extension: SMLAD on int16 pairs, SXTB16) through ACLE
  intrinsics; te_simd_dsp.h gives the same operations in portable C elsewhere, so the host
  tests run this path too;
- ``mve``: Cortex-M55 (Helium) through arm_mve.h intrinsics;
- ``generic``: everything else (Cortex-M0+, Xtensa, the host).

A path kernel has the generic kernel's struct and in-place contract (tinyeff_kernels.h); it may
ask for a work buffer in the arena (``work_bytes``), and a pointwise kernel states how many
pixels it computes before it writes them (``pixel_group``), which sizes its in-place scratch.
"""

from __future__ import annotations

import dataclasses

PATHS = ("generic", "dsp", "mve")
CORE_PATHS = {"cortex-m4f": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp", "cortex-m55": "mve"}

# firmware/kernels files every compiled project carries, and those each path adds
COMMON_FILES = (
    "tinyeff_kernels.h", "te_fixedpoint.h", "te_ring.h",
    "te_conv_generic.c", "te_depthwise_generic.c", "te_fully_connected_generic.c",
    "te_pool.c", "te_mean.c", "te_softmax.c", "te_elementwise.c", "te_layout.c", "te_activation.c",
    "te_transpose_conv.c", "te_int16.c", "te_lstm.c",
)
PATH_FILES = {
    "generic": (),
    "dsp": ("te_kernels_dsp.h", "te_simd_dsp.h", "te_conv_dsp.c", "te_depthwise_dsp.c", "te_fully_connected_dsp.c",
            "te_lstm_dsp.c"),
    "mve": ("te_kernels_mve.h", "te_conv_mve.c", "te_depthwise_mve.c", "te_fully_connected_mve.c"),
}


PATH_HEADERS = {"generic": (), "dsp": ("te_kernels_dsp.h",), "mve": ("te_kernels_mve.h",)}


@dataclasses.dataclass(frozen=True)
class KernelChoice:
    name: str
    work_bytes: int = 0  # arena bytes the kernel needs while it runs (im2col columns), besides in-place scratch
    pixel_group: int = 1  # pointwise: pixels computed before any is written (in-place scratch = group * out_c;
    # 0 when the kernel keeps the group's input in its work buffer and needs no scratch)
    partial_ring: bool = True  # in place, may the ring hold fewer rows than the span (te_ring_row for every row)?


def path_for_core(core: str) -> str:
    """The kernel path for a board's core ('generic' for cores without DSP or MVE)."""
    return CORE_PATHS.get(core, "generic")


def files(path: str) -> tuple[str, ...]:
    """firmware/kernels files a project on PATH carries (headers and sources)."""
    return COMMON_FILES + PATH_FILES[path]


def sources(path: str) -> tuple[str, ...]:
    """The C sources among files(PATH)."""
    return tuple(f for f in files(path) if f.endswith(".c"))


def is_pointwise(f: dict) -> bool:
    return f["k_h"] == f["k_w"] == 1 and f["stride_h"] == f["stride_w"] == 1 and f["pad_top"] == f["pad_left"] == 0


def choose(path: str, op: str, f: dict) -> KernelChoice | None:
    """PATH's kernel for OP with struct fields F, or None when the generic kernel runs it."""
    return {"dsp": _dsp, "mve": _mve}.get(path, lambda op, f: None)(op, f)


def _im2col_bytes(f: dict, pixels: int) -> int:
    return pixels * f["k_h"] * f["k_w"] * f["in_c"]


def _dsp_columns_bytes(depth: int) -> int:
    """Two columns of DEPTH int8 values widened to int16, DEPTH rounded up to 4 (TE_DSP_COLUMNS_BYTES)."""
    return 4 * (-(-depth // 4) * 4)


def _dsp(op: str, f: dict) -> KernelChoice | None:
    if op == "CONV_2D":
        if is_pointwise(f):
            # both input pixels are widened into the work buffer before either output is written,
            # so in place the kernel needs no scratch of its own
            return KernelChoice("te_pointwise_dsp", work_bytes=_dsp_columns_bytes(f["in_c"]), pixel_group=0)
        return KernelChoice("te_conv2d_dsp", work_bytes=_dsp_columns_bytes(f["k_h"] * f["k_w"] * f["in_c"]))
    if op == "DEPTHWISE_CONV_2D" and f["depth_mult"] == 1:
        return KernelChoice("te_depthwise_dsp")
    if op == "FULLY_CONNECTED" and f["filter_offset"] == 0:
        return KernelChoice("te_fully_connected_dsp")
    if op == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        return KernelChoice("te_lstm_dsp")
    return None


def _mve(op: str, f: dict) -> KernelChoice | None:
    if op == "CONV_2D":
        if is_pointwise(f):
            return KernelChoice("te_pointwise_mve", pixel_group=4)
        return KernelChoice("te_conv2d_mve", work_bytes=_im2col_bytes(f, 4))
    if op == "DEPTHWISE_CONV_2D" and f["depth_mult"] == 1:
        return KernelChoice("te_depthwise_mve", partial_ring=False)  # its windows wrap around a full ring
    if op == "FULLY_CONNECTED" and f["filter_offset"] == 0:
        return KernelChoice("te_fully_connected_mve")
    return None
