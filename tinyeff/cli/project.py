"""Boards, and the firmware projects generated, built and flashed for them."""

from __future__ import annotations

import json
from pathlib import Path

from tinyeff.cli.output import Progress


def cmd_boards(args) -> int:
    from tinyeff.boards import all_boards

    boards = list(all_boards().values())
    if args.json:
        import dataclasses

        print(json.dumps([dataclasses.asdict(b) for b in boards], indent=2))
        return 0
    print(f"{'id':20s} {'core':14s} {'clock':>8s} {'flash':>9s} {'RAM':>9s}  {'builds with':12s} emulator")
    for b in boards:
        builds = "make" if b.baremetal else f"pio {b.platformio.board}"
        emu = f"{b.emulator.kind} {b.emulator.machine or b.emulator.platform}" if b.emulator else "-"
        print(f"{b.id:20s} {b.core:14s} {b.clock_hz / 1e6:6.0f}MHz {b.flash_kib:>6d}KiB {b.ram_kib:>6d}KiB  {builds:12s} {emu}")
    return 0


def cmd_generate(args) -> int:
    from tinyeff.generate import generate

    out = generate(Path(args.model), args.board, args.runtime, Path(args.out), force=args.force, optimize=args.optimize,
                   frontend=Path(args.frontend) if args.frontend else None)
    man = json.loads((out / "tinyeff.json").read_text())
    if man.get("runtime_chosen_because"):
        print(f"{man['runtime_chosen_because']}; this project uses TensorFlow Lite Micro instead")
    tree = " --tflm-dir <a TFLM tree>" if man["runtime"] == "tflm" else ""
    how = (f"build and flash it with 'pio run -d {out} -t upload' (steps in {out / 'README.md'})"
           if (out / "platformio.ini").is_file()
           else f"build it with 'tinyeff build {out}{tree}'" + (" (its README.md says how to make the tree)" if tree else ""))
    plan = (f" (floor {man['memory_plan']['floor_bytes']:,} B), {man['kernel_path']} kernels" if "memory_plan" in man else "")
    print(f"generated {out} for {man['board']} ({man['runtime']} runtime): arena {man['arena_bytes']:,} B{plan}, "
          f"ops {', '.join(man['ops'])}; {how}")
    fe = man.get("frontend")
    if fe and fe["type"] == "text":
        from tinyeff.frontend import frontend_from_json

        print(f"  text front end: the device takes UTF-8 (up to {fe['max_raw_bytes']} bytes) and projects it "
              f"({frontend_from_json(fe).projection.describe()}; {fe['ram_bytes']:,} B of RAM)")
    elif fe:
        kind = f"{fe['n_mfcc']} MFCC" if fe["n_mfcc"] else f"{fe['n_mels']} log-mel"
        how_made = ("with TFLM's micro frontend (as pymicro-features)" if fe["arithmetic"] == "micro"
                    else "in integer arithmetic")
        print(f"  audio front end: the device takes {fe['clip_samples']:,} samples of 16-bit PCM at {fe['sample_rate_hz']:,} Hz "
              f"and makes {kind} features per {fe['hop_samples']}-sample hop {how_made} ({fe['ram_bytes']:,} B of RAM)")
        if st := fe.get("stream"):
            hop_s = fe["hop_samples"] / fe["sample_rate_hz"]
            words = ", ".join(st["labels"][c] for c in st["keywords"])
            print(f"  keyword stream: the model every {st['every'] * hop_s * 1000:.0f} ms on the last {fe['clip_samples'] / fe['sample_rate_hz']:g} s, "
                  f"reports {words} at an averaged probability of {st['threshold']:g} (tinyeff bench --stream)")
    return 0


def cmd_build(args) -> int:
    from tinyeff.build import build_project

    progress = Progress(args.quiet)
    result = build_project(Path(args.project), Path(args.tflm_dir) if args.tflm_dir else None, args.jobs,
                           lambda i, n: progress.transient(f"build: compiled {i}/{n} files") if i < n else progress(f"build: compiled {n} files"))
    print("\n".join(result.lines()))
    return 0


def cmd_flash(args) -> int:
    from tinyeff.harness.bench import Project
    from tinyeff.harness.flash import flash

    print(flash(Project.load(Path(args.project)), args.port))
    return 0


def add_parsers(sub) -> None:
    b = sub.add_parser("boards", help="the boards tinyeff knows")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_boards)

    g = sub.add_parser("generate", help="a firmware project for an int8 .tflite on a board")
    g.add_argument("model", help="an int8 .tflite (one the kit made, or a third party's)")
    g.add_argument("--board", required=True, help="a board id from 'tinyeff boards': qemu-* boards build offline with make, "
                   "real boards as PlatformIO projects")
    g.add_argument("--runtime", default="auto", choices=("auto", "compiled", "tflm"),
                   help="compiled (the model as C99, no interpreter), tflm (TensorFlow Lite Micro), or auto (default): "
                   "compiled when it can run the model, else tflm, saying why")
    g.add_argument("--optimize", default="speed", choices=("speed", "size"),
                   help="compiled runtime: speed uses the core's SIMD kernels (DSP on Cortex-M4/M7/M33, Helium on M55; "
                   "default), size the generic C kernels (less code)")
    g.add_argument("--frontend", metavar="RUN", help="the run (train, shrink or search directory) the model came from: the "
                   "firmware then carries its front end (a projection model's text projection, or the audio front end of a run "
                   "trained with --audio-frontend fixed or micro; a keyword classifier's also gets the keyword stream) and "
                   "takes raw samples (tinyeff bench sends them)")
    g.add_argument("--out", required=True, help="project directory to create")
    g.add_argument("--force", action="store_true", help="replace --out if it exists")
    g.set_defaults(func=cmd_generate)

    bu = sub.add_parser("build", help="compile a generated project here: make for QEMU boards, PlatformIO's file set and flags "
                        "with the Debian arm-none-eabi-gcc for real Arm boards (all but the Arduino core)")
    bu.add_argument("project", help="a directory made by 'tinyeff generate'")
    bu.add_argument("--tflm-dir", help="a TFLM tree made by create_tflm_tree.py (tflm projects; the project's README says how)")
    bu.add_argument("--jobs", type=int, help="files compiled at once (default: one per CPU)")
    bu.add_argument("--quiet", action="store_true")
    bu.set_defaults(func=cmd_build)

    f = sub.add_parser("flash", help="build a generated project and put it on its board")
    f.add_argument("project", help="a directory made by 'tinyeff generate'")
    f.add_argument("--port", help="upload port of a real board (default: PlatformIO finds it)")
    f.set_defaults(func=cmd_flash)
