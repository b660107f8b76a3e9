"""The tinyeff command line. Each command is a thin layer over the pipeline stages."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from tinyeff import __version__
from tinyeff.errors import TinyeffError

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


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def footprint_line(fp) -> str:
    return (f"flash {fp.flash_bytes:,} B ({fp.flash_bytes / KIB:.2f} KiB)  RAM {fp.ram_bytes:,} B "
            f"({fp.ram_bytes / KIB:.2f} KiB; activations {fp.arena.head:,}, persistent {fp.arena.tail:,})  MACs {fp.macs:,}")


# ---------------------------------------------------------------- train / quantize


def cmd_train(args) -> int:
    from tinyeff._native import seed_everything
    from tinyeff.compress.qat import quantize_with_fallback
    from tinyeff.compress.quantize import int8_accuracy, representative_set
    from tinyeff.data import load_dataset
    from tinyeff.footprint import measure
    from tinyeff.models import ProjectionConfig, build, dscnn_spec, projection_spec
    from tinyeff.train import Run, TrainConfig, evaluate, features_of, fit, write_run
    from tinyeff.train.fit import validation_split
    from tinyeff.train.run import INT8, save_run

    progress = Progress(args.quiet)
    data = load_dataset(args.data, lang=args.lang, seed=args.seed)
    if args.model == "dscnn":
        if data.kind == "text":
            raise TinyeffError(f"dataset '{args.data}' is text; train a 'projection' model on it")
        spec = dscnn_spec(data.input_shape, data.n_classes, width=args.width or 64, depth=args.depth or 3)
    else:
        if data.kind != "text":
            raise TinyeffError(f"dataset '{args.data}' is not text; train a 'dscnn' model on it")
        cfg = ProjectionConfig(features=args.features, max_tokens=args.max_tokens)
        spec = projection_spec(data.n_classes, width=args.width or 64, depth=args.depth or 2, cfg=cfg)
    tcfg = TrainConfig(epochs=args.epochs, seed=args.seed, augment=not args.no_augment, mixup_alpha=args.mixup,
                       temperature=args.temperature, alpha=args.alpha)
    teacher = None
    if args.teacher:
        trun = Run.load(Path(args.teacher))
        if trun.spec.input_shape != spec.input_shape or trun.spec.n_classes != spec.n_classes:
            raise TinyeffError(f"teacher '{args.teacher}' has another input or class count than this model; train it on the same data")
        teacher = trun.keras_model()

    with write_run(Path(args.out), force=args.force) as tmp:
        x_train, x_test = features_of(spec, data.x_train), features_of(spec, data.x_test)
        seed_everything(tcfg.seed)  # the initial weights too, not only the training loop
        model = build(spec)
        progress(f"training {spec.describe()} on {data.name}: {len(x_train)} train / {len(x_test)} test samples, {data.n_classes} classes"
                 + (f", distilling from {args.teacher}" if teacher is not None else ""))
        t0 = time.monotonic()
        result = fit(model, x_train, data.y_train, tcfg, kind=data.kind, teacher=teacher, progress=progress.transient)
        progress(f"trained {result.epochs_run} epochs in {time.monotonic() - t0:.1f} s (best validation {_pct(result.val_accuracy)} at epoch {result.best_epoch})")
        tr, va = validation_split(data.y_train, tcfg)  # the slice early stopping watched
        q = quantize_with_fallback(model, spec, x_train[tr], data.y_train[tr], x_train[va], data.y_train[va],
                                   representative_set(x_train, args.seed), kind=data.kind, qat=args.qat, seed=args.seed,
                                   progress=progress)
        model, tfl = q.model, q.tflite
        (tmp / INT8).write_bytes(tfl)
        fp = measure(tfl, INT8)
        metrics = {
            "float_accuracy": evaluate(model, x_test, data.y_test),
            "int8_accuracy": int8_accuracy(tfl, x_test, data.y_test),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "val_accuracy": result.val_accuracy,
            "quantization": q.method,
            "train_seconds": time.monotonic() - t0,
            "footprint": fp.to_json(),
            "history": list(result.history),
            "synthetic_data": data.synthetic,  # empty for recorded data
        }
        save_run(tmp, spec=spec, train=tcfg, data=data, model=model, metrics=metrics,
                 data_source={"spec": args.data, "lang": args.lang, "seed": args.seed})
    print(f"run {args.out}: float test accuracy {_pct(metrics['float_accuracy'])}, int8 {_pct(metrics['int8_accuracy'])}"
          + (f" on synthetic data ({data.synthetic})" if data.synthetic else ""))
    print(f"  int8 model {Path(args.out) / INT8}: {footprint_line(fp)}")
    return 0


def cmd_quantize(args) -> int:
    from tinyeff.compress.qat import QAT_THRESHOLD_POINTS, quantize_with_fallback
    from tinyeff.compress.quantize import int8_accuracy, representative_set
    from tinyeff.footprint import measure
    from tinyeff.train import Run, evaluate, features_of
    from tinyeff.train.fit import validation_split
    from tinyeff.train.run import INT8, MODEL

    run = Run.load(Path(args.run))
    model = run.keras_model()
    x_train, x_test = features_of(run.spec, run.data.x_train), features_of(run.spec, run.data.x_test)
    tr, va = validation_split(run.data.y_train, run.train)
    q = quantize_with_fallback(model, run.spec, x_train[tr], run.data.y_train[tr], x_train[va], run.data.y_train[va],
                               representative_set(x_train, args.seed, args.samples), kind=run.data.kind, qat=args.qat,
                               seed=args.seed, progress=Progress(False))
    out = Path(args.out) if args.out else run.path / INT8
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(q.tflite)
    tmp.replace(out)
    if q.method == "qat" and not args.out:  # the run's float model is the one its int8 model came from
        q.model.save(run.path / f".{MODEL}.tmp.keras")
        (run.path / f".{MODEL}.tmp.keras").replace(run.path / MODEL)
    fa, ia = evaluate(q.model, x_test, run.data.y_test), int8_accuracy(q.tflite, x_test, run.data.y_test)
    print(f"{'':14s}{'float':>10s}{'int8':>10s}")
    print(f"{'test accuracy':14s}{_pct(fa):>10s}{_pct(ia):>10s}   (drop {100 * (fa - ia):.2f} points)")
    how = {"ptq": f"post-training quantization (validation drop within {QAT_THRESHOLD_POINTS:g} point, or --qat off)",
           "qat": "quantization-aware fine-tuning, then post-training quantization"}[q.method]
    print(f"  by {how}")
    print(f"{out}: {footprint_line(measure(q.tflite, str(out)))}")
    return 0


# ---------------------------------------------------------------- shrink


def _budget(args):
    """The budget from --flash-kib/--ram-kib and a --board preset; given both, the tighter one holds."""
    from tinyeff.compress.shrink import Budget

    flash = round(args.flash_kib * KIB) if args.flash_kib is not None else None
    ram = round(args.ram_kib * KIB) if args.ram_kib is not None else None
    if args.board:
        from tinyeff import tflm
        from tinyeff.boards import get_board

        board = get_board(args.board)
        # The board preset is what a TFLM deployment on it leaves for the model: the shrink step
        # measures the host TFLM arena, and the firmware adds its documented margin to that.
        preset_flash, preset_ram = board.model_flash_bytes, board.model_ram_bytes - tflm.ARENA_MARGIN_BYTES
        flash = preset_flash if flash is None else min(flash, preset_flash)
        ram = preset_ram if ram is None else min(ram, preset_ram)
    return Budget(flash, ram)


def cmd_shrink(args) -> int:
    import dataclasses

    from tinyeff.compress.report import write_report
    from tinyeff.compress.shrink import ShrinkConfig, shrink
    from tinyeff.train import Run, write_run
    from tinyeff.train.run import CONFIG, INT8, METRICS, save_run

    budget = _budget(args)
    run = Run.load(Path(args.run))
    progress = Progress(args.quiet)
    cfg = ShrinkConfig(step_fraction=args.step_fraction, compare_plain=not args.no_compare_plain, qat=args.qat,
                       finetune=dataclasses.replace(ShrinkConfig().finetune, seed=run.train.seed))
    progress(f"shrinking {run.path} ({run.spec.describe()}) to {budget.describe()}")
    t0 = time.monotonic()
    with write_run(Path(args.out), force=args.force) as tmp:
        result = shrink(run, budget, cfg, progress)
        (tmp / INT8).write_bytes(result.tflite)
        summary = write_report(tmp, result.candidates, result.chosen, budget)
        c = result.chosen
        metrics = {
            "float_accuracy": c.float_accuracy,
            "int8_accuracy": c.int8_accuracy,
            "int8_val_accuracy": c.int8_val_accuracy,
            "footprint": c.footprint.to_json(),
            "shrink_seconds": time.monotonic() - t0,
            "distillation_vs_plain": summary["distillation_vs_plain"],
        }
        save_run(tmp, spec=result.spec, train=run.train, data=run.data, model=result.model, metrics=metrics,
                 data_source=run.config["data"])
        config = json.loads((tmp / CONFIG).read_text())
        config["shrink"] = {"from": str(run.path), "budget": summary["budget"], "chosen": c.name,
                            "config": dataclasses.asdict(cfg)}
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        (tmp / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    d = summary["distillation_vs_plain"]
    print(f"chose {c.name} widths {list(c.widths)}: int8 test accuracy {_pct(c.int8_accuracy)} (float {_pct(c.float_accuracy)})")
    print(f"  {Path(args.out) / INT8}: {footprint_line(c.footprint)}")
    if d.get("steps"):
        print(f"  distillation vs plain fine-tuning at equal footprint: better in {d['distilled_better']} of {d['steps']} steps, "
              f"worse in {d['plain_better']}, mean {d['mean_gain_points']:+.2f} points")
    print(f"  report: {Path(args.out) / 'candidates.csv'}, {Path(args.out) / 'pareto.png'}")
    return 0


# ---------------------------------------------------------------- inspect


def cmd_inspect(args) -> int:
    from tinyeff.boards import get_board
    from tinyeff.footprint import host_tflm_arena, load_model_file, require_quantized
    from tinyeff.generate import runtime_footprints

    board = get_board(args.board) if args.board else None
    data, info = load_model_file(Path(args.model))
    require_quantized(info)
    arena = host_tflm_arena(data, args.model)
    runtimes = runtime_footprints(data, info, Path(args.model).name, arena.total, board)
    report = {
        "model": args.model,
        "sha256": info.sha256,
        "flash_bytes": info.size_bytes,
        "weight_bytes": info.weight_bytes,
        "arena_bytes": arena.total,
        "arena_head_bytes": arena.head,
        "arena_tail_bytes": arena.tail,
        "macs": info.macs,
        "ops": [{"index": o.index, "op": o.op, "macs": o.macs,
                 "output_shape": list(info.tensors[o.outputs[0]].shape)} for o in info.ops],
        "op_counts": {n: sum(o.op == n for o in info.ops) for n in info.op_names},
        "runtimes": {r.runtime: r.to_json(board) for r in runtimes},
        "board": board.id if board else None,
        "inputs": [_tensor_json(info.tensors[i]) for i in info.inputs],
        "outputs": [_tensor_json(info.tensors[i]) for i in info.outputs],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.model}  sha256 {info.sha256[:16]}")
    for role in ("inputs", "outputs"):
        for t in report[role]:
            print(f"  {role[:-1]:6s} {t['dtype'].lower()} {t['shape']} scale {t['scale']:.6g} zero point {t['zero_point']}")
    print(f"  {'#':>3s} {'op':22s} {'output shape':18s} {'MACs':>10s}")
    for o in report["ops"]:
        print(f"  {o['index']:3d} {o['op']:22s} {str(o['output_shape']):18s} {o['macs']:>10,}")
    print(f"  ops: " + ", ".join(f"{n} x{k}" for n, k in report["op_counts"].items()))
    print(f"  flash {info.size_bytes:,} B (weights {info.weight_bytes:,} B)   host TFLM arena {arena.total:,} B "
          f"(head {arena.head:,} activations, tail {arena.tail:,} persistent)   MACs {info.macs:,}")
    fits_any = False
    for r in runtimes:
        line = f"  runtime {r.runtime:9s}"
        if r.unsupported:
            print(f"{line}cannot run it: {r.unsupported}")
            continue
        line += f"flash {r.flash_bytes:,} B, RAM {r.ram_bytes:,} B" + (
            " (arena + margin)" if r.runtime == "tflm" else f" (planned arena; the model's floor is {r.floor_bytes:,} B)")
        if board is not None:
            problem = r.problem_on(board)
            fits_any |= not problem
            line += f"  -> {'fits' if not problem else 'does not fit'} {board.id}" + (f": {problem}" if problem else "")
        print(line)
    if board is not None and not fits_any:
        print(f"  verdict: does not fit {board.id} ({board.model_flash_bytes:,} B flash, {board.model_ram_bytes:,} B RAM left "
              f"for a model); shrink it (tinyeff shrink --board {board.id}) or choose a larger board")
    return 0


def _tensor_json(t) -> dict:
    return {"name": t.name, "dtype": t.dtype, "shape": list(t.shape),
            "scale": t.scales[0] if t.scales else 0.0, "zero_point": t.zero_points[0] if t.zero_points else 0}


# ---------------------------------------------------------------- boards / generate


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

    out = generate(Path(args.model), args.board, args.runtime, Path(args.out), force=args.force, optimize=args.optimize)
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
    return 0


# ---------------------------------------------------------------- build / flash / bench / demo


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


def bench_summary(r) -> list[str]:
    unit = r.latency_unit
    lines = [
        f"bench of {r.samples} samples on {r.board} ({r.runtime} runtime) over {r.device}",
        f"  accuracy on the device   {_pct(r.accuracy)}   (host TFLM: {_pct(r.host_accuracy)})" if r.accuracy is not None
        else "  accuracy                 (the data has no labels)",
        *([f"  data                     synthetic ({r.synthetic_data}), not recorded"] if r.synthetic_data else []),
        f"  agreement with host TFLM {_pct(r.exact_agreement)} of outputs bit-exact, {_pct(r.top1_agreement)} same top-1",
        f"  latency                  {r.latency_median:,.0f} {unit} per inference (median; min {r.latency_min:,.0f}, "
        f"max {r.latency_max:,.0f}; {r.timer} timer)" + (f", {r.latency_us_median:,.0f} us" if r.latency_us_median else ""),
        (f"  memory                   arena {r.arena_bytes:,} B"
         + (f" ({r.arena_used_bytes:,} B of it used)" if r.arena_used_bytes != r.arena_bytes else "")
         + f" + stack {r.stack_bytes:,} B (painted high-water mark)") if r.arena_bytes is not None
        else "  memory                   not read (below)",
        f"  link                     {r.resets} device resets, {r.retries} exchanges retried, {r.errors} samples lost to errors",
        f"  wall time                {r.wall_seconds:,.1f} s for the samples on {len(r.devices)} device{'s' if len(r.devices) > 1 else ''}",
    ]
    if len(r.devices) > 1:
        lines.append(f"  devices                  {len(r.devices)}, sharing the samples:")
        lines += [f"    {d.url}: {d.samples} samples, {d.errors} errors"
                  + (f", latency median {d.latency_median:,.0f} (min {d.latency_min:,.0f}, max {d.latency_max:,.0f})"
                     if d.latency_median is not None else "")
                  + (f"; left the bench: {d.stopped}" if d.stopped else "") for d in r.devices]
    if unit == "emulated instructions":
        lines.append("  (an emulator counts instructions; it is not a board's cycle count or latency)")
    lines += [f"  missing                  {m}" for m in r.missing]
    if not r.layers:
        if not any(m.startswith("per-layer") for m in r.missing):
            lines.append("  per layer                not measured: the runtime calls no layer hook (TFLM built with "
                         "TF_LITE_STRIP_ERROR_STRINGS compiles its profiler out)")
        return lines
    lines.append("  per layer (last inference):")
    lines += [f"    {l.index:3d} {l.op:22s} {l.latency:>14,.0f} {unit}" for l in r.layers]
    return lines


def cmd_bench(args) -> int:
    import contextlib

    from tinyeff.harness.bench import Project, bench_inputs, data_synthetic, inputs_sha256, run_bench
    from tinyeff.harness.dut import Dut
    from tinyeff.harness.flash import open_devices
    from tinyeff.harness.report import Journal, resumable, write_json, write_junit, write_plot

    project = Project.load(Path(args.project))
    x, y = bench_inputs(args.data, project.model, args.lang, limit=args.limit or None)
    if args.min_accuracy is not None and (y < 0).any():
        raise TinyeffError(f"--min-accuracy needs labels, and '{args.data}' has none; add 'labels' to it or drop --min-accuracy")
    if args.resume and not args.json:
        raise TinyeffError("--resume continues the report a bench wrote with --json; give that --json file")
    man = project.manifest
    key = inputs_sha256(project, x, y)
    done = resumable(Path(args.json), man["model_sha256"], key) if args.resume else []
    progress = Progress(args.quiet)
    if done:
        progress(f"bench: {len(done)} samples kept from {args.json}, {len(y) - len(done)} to run")
    synthetic = data_synthetic(args.data)
    header = {"board": man["board"], "runtime": man["runtime"], "model_sha256": man["model_sha256"], "inputs_sha256": key,
              "samples": len(y), "synthetic_data": synthetic}
    journal = Journal(args.json, args.junit, header, done) if args.json or args.junit else None
    with contextlib.ExitStack() as stack:
        places = []
        if args.labgrid:
            from tinyeff.harness.farm import LabgridPlaces

            places = stack.enter_context(LabgridPlaces(args.labgrid, args.coordinator, args.labgrid_wait))
            progress(f"bench: acquired labgrid place{'s' * (len(places) > 1)} {', '.join(p.name for p in places)}")
        duts = []
        for device in open_devices(project, args.port or [], args.emulator, args.jobs, stack, places):
            duts.append(Dut(device, timeout=args.timeout))
            duts[-1].wait_ready()
        result = run_bench(project, duts, x, y,
                           lambda i, n: progress.transient(f"bench: sample {i}/{n}") if i < n else progress(f"bench: {n} samples done"),
                           on_sample=journal and journal.add, done=done)
    result = dataclasses.replace(result, synthetic_data=synthetic)
    print("\n".join(bench_summary(result)))
    if args.json:
        write_json(result, Path(args.json))
    if args.junit:
        write_junit(result, Path(args.junit), args.min_accuracy)
    if args.plot:
        write_plot(result, Path(args.plot))
    failed = result.errors or result.exact_agreement < 1.0 or (args.min_accuracy is not None and result.accuracy < args.min_accuracy)
    return 1 if failed else 0


def cmd_demo(args) -> int:
    """The README's main job, end to end on an emulated board."""
    out = Path(args.out)
    run, small, project = out / "run", out / "small", out / f"firmware-{args.board}"
    steps = [
        ["train", "dscnn", "--data", "digits", "--out", str(run), "--force"],
        ["shrink", str(run), "--flash-kib", "12", "--ram-kib", "6", "--out", str(small), "--force"],
        ["inspect", str(small / "model.int8.tflite")],
        ["generate", str(small / "model.int8.tflite"), "--board", args.board, "--out", str(project), "--force"],
        ["bench", str(project), "--data", str(small), "--json", str(out / "bench.json"),
         "--junit", str(out / "bench.xml"), "--plot", str(out / "bench.png")],
    ]
    for step in steps:
        print(f"\n$ tinyeff {' '.join(step)}", flush=True)
        rc = main(step)
        if rc:
            return rc
    print("\n" + "\n".join(demo_table(small / "model.int8.tflite", project, json.loads((out / "bench.json").read_text()))))
    # the same model for a real board, on TensorFlow Lite Micro: generated and validated here, flashed where the board is
    real = out / "tflm-nucleo-l4r5zi"
    step = ["generate", str(small / "model.int8.tflite"), "--board", "nucleo-l4r5zi", "--runtime", "tflm", "--out", str(real), "--force"]
    print(f"\n$ tinyeff {' '.join(step)}", flush=True)
    rc = main(step)
    if rc == 0:
        print(f"to run it on a NUCLEO-L4R5ZI: put TFLM in {real / 'tflm'} (commands in {real / 'README.md'}), then "
              f"'tinyeff flash {real}' and 'tinyeff bench {real} --data {small} --port /dev/ttyACM0'")
    return rc


def demo_table(model: Path, project: Path, bench: dict) -> list[str]:
    """The footprint of the chosen model, measured both ways, and what the device did with it."""
    from tinyeff.footprint import host_tflm_arena
    from tinyeff.harness.bench import Project
    from tinyeff.harness.sizes import model_cost

    data = model.read_bytes()
    arena = host_tflm_arena(data, model.name)
    cost = model_cost(Project.load(project))
    return [
        f"| {model.name} on {bench['board']} | flash | RAM |",
        "|---|---:|---:|",
        f"| int8 .tflite for TFLM (file; host TFLM arena) | {len(data):,} B | {arena.total:,} B |",
        f"| tinyeff compiled runtime (firmware {cost.firmware.flash_bytes:,} B minus empty-model firmware "
        f"{cost.empty.flash_bytes:,} B; arena + measured stack) | {cost.flash_bytes:,} B | "
        + (f"{bench['arena_bytes'] + bench['stack_bytes']:,} B |" if bench["arena_bytes"] is not None else "not read |"),
        "",
        f"on the emulated board: accuracy {_pct(bench['accuracy'])} (host TFLM int8 {_pct(bench['host_accuracy'])}), "
        f"{_pct(bench['exact_agreement'])} of outputs bit-exact with host TFLM, "
        f"{bench['latency_median']:,.0f} {bench['latency_unit']} per inference (QEMU -icount; not a board's latency)",
    ]


# ---------------------------------------------------------------- data


def cmd_data_tts(args) -> int:
    from tinyeff.data.tts import TtsSettings, synthesize, unknown_words

    keywords = tuple(k.strip() for k in args.keywords.split(",") if k.strip())
    settings = TtsSettings(keywords, unknown_words(args.unknown, keywords), clips_per_class=args.clips, seed=args.seed)
    progress = Progress(args.quiet)
    s = synthesize(settings, Path(args.out), force=args.force,
                   progress=lambda i, n: progress.transient(f"tts: clip {i}/{n}") if i < n else progress(f"tts: {n} clips done"))
    print(f"synthetic keyword dataset in {s.out} (spoken by {s.generator}, not recorded speech):")
    for label, n in s.clips.items():
        print(f"  {label:16s} {n:5d} clips")
    print(f"total {s.total:,} synthetic clips of {settings.clip_s:g} s at {settings.sample_rate_hz:,} Hz, "
          f"{s.bytes / 1e6:.1f} MB; train on it with 'tinyeff train dscnn --data {s.out}'")
    return 0


# ---------------------------------------------------------------- parser


QAT_CHOICES = ("auto", "always", "off")
QAT_HELP = "quantization-aware fine-tuning: auto (when int8 loses more than 1 point on validation), always, off"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tinyeff", description="TinyML deployment kit: train, shrink to a KiB budget, full-int8, measure.")
    p.add_argument("--version", action="version", version=f"tinyeff {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a dscnn or projection model and quantize it to int8")
    t.add_argument("model", choices=("dscnn", "projection"))
    t.add_argument("--data", required=True, help="digits, intents, a .npz, a text,label .csv, or a folder of .wav per class")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--lang", default="en", help="language of the intents dataset (default en)")
    t.add_argument("--width", type=int, help="channels per layer (default 64)")
    t.add_argument("--depth", type=int, help="separable blocks (dscnn, default 3) or conv layers (projection, default 2)")
    t.add_argument("--features", type=int, default=64, help="projection: hashed features per token")
    t.add_argument("--max-tokens", type=int, default=16, help="projection: tokens per sentence")
    t.add_argument("--epochs", type=int, default=80)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--teacher", help="a run directory to distil from")
    t.add_argument("--temperature", type=float, default=2.0, help="distillation temperature")
    t.add_argument("--alpha", type=float, default=0.5, help="weight of the teacher's soft targets")
    t.add_argument("--mixup", type=float, default=0.0, help="mixup Beta(a, a) parameter; 0 is off")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--qat", choices=QAT_CHOICES, default="auto", help=QAT_HELP)
    t.add_argument("--force", action="store_true", help="replace --out if it exists")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=cmd_train)

    q = sub.add_parser("quantize", help="full-int8 post-training quantization of a run's model")
    q.add_argument("run")
    q.add_argument("--out", help="where to write the .tflite (default RUN/model.int8.tflite)")
    q.add_argument("--samples", type=int, default=300, help="representative samples from the training data")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--qat", choices=QAT_CHOICES, default="auto", help=QAT_HELP)
    q.set_defaults(func=cmd_quantize)

    s = sub.add_parser("shrink", help="prune and distil a run's model until its int8 form fits a budget")
    s.add_argument("run")
    s.add_argument("--out", required=True)
    s.add_argument("--flash-kib", type=float)
    s.add_argument("--ram-kib", type=float)
    s.add_argument("--board", help="a board id: its flash and RAM left for a model (TFLM arena + margin) are the budget")
    s.add_argument("--step-fraction", type=float, default=0.15, help="share of channels removed per step")
    s.add_argument("--no-compare-plain", action="store_true", help="skip the plain fine-tuning baseline (faster)")
    s.add_argument("--qat", choices=QAT_CHOICES, default="auto", help=QAT_HELP + " (applied to the chosen model)")
    s.add_argument("--force", action="store_true")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_shrink)

    i = sub.add_parser("inspect", help="ops, shapes, quantization, MACs, flash and TFLM arena of an int8 .tflite")
    i.add_argument("model")
    i.add_argument("--board", help="a board id: say whether the model fits it under each runtime")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

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

    be = sub.add_parser("bench", help="run a test set on the device: accuracy, agreement with host TFLM, latency, memory")
    be.add_argument("project", help="a directory made by 'tinyeff generate'")
    be.add_argument("--data", required=True, help="the run directory the model came from (its test split), or a dataset")
    be.add_argument("--port", action="append", help="the board's serial port as a pyserial URL (/dev/ttyACM0, socket://host:port, "
                    "rfc2217://...); repeat for several boards running the same firmware: they share the samples")
    be.add_argument("--emulator", choices=("qemu", "renode"), help="run on an emulator (default for qemu-* boards)")
    be.add_argument("--jobs", type=int, help="emulators started at once, sharing the samples (default 1)")
    be.add_argument("--labgrid", action="append", metavar="PLACE", help="acquire this place of a labgrid farm, load the "
                    "firmware through its GDB server, bench, release it; repeat for several places at once")
    be.add_argument("--coordinator", help="the labgrid coordinator as HOST:PORT (default: $LG_COORDINATOR, else 127.0.0.1:20408)")
    be.add_argument("--labgrid-wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for a place someone else holds (default: refuse at once, naming the holder)")
    be.add_argument("--lang", default="en")
    be.add_argument("--limit", type=int, help="bench only the first N samples")
    be.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply before retrying")
    be.add_argument("--min-accuracy", type=float, help="fail (exit 1, JUnit failure) below this accuracy, e.g. 0.9")
    be.add_argument("--json", help="write the full result as JSON (it grows sample by sample while the bench runs)")
    be.add_argument("--resume", action="store_true", help="keep the finished samples of the --json report of an interrupted "
                    "bench of the same inputs and run the rest")
    be.add_argument("--junit", help="write JUnit XML (one case per sample) for CI")
    be.add_argument("--plot", help="write a PNG of the latency distribution and per-layer latency")
    be.add_argument("--quiet", action="store_true")
    be.set_defaults(func=cmd_bench)

    da = sub.add_parser("data", help="make a dataset the kit can train on")
    dsub = da.add_subparsers(dest="data_command", required=True)
    tts = dsub.add_parser("tts", help="a synthetic keyword-spotting set spoken by espeak-ng (voices, speeds, pitches, "
                          "shifts and noise varied): OUT/<keyword>, _unknown_, _silence_ of 1 s 16 kHz .wav")
    tts.add_argument("--keywords", required=True, help="comma-separated words, e.g. yes,no,up,down")
    tts.add_argument("--out", required=True, help="dataset directory to create")
    tts.add_argument("--clips", type=int, default=100, help="clips per class (default 100)")
    tts.add_argument("--unknown", type=int, default=20, help="other words spoken for _unknown_ (default 20; 0 leaves the class out)")
    tts.add_argument("--seed", type=int, default=0)
    tts.add_argument("--force", action="store_true", help="replace --out if it exists")
    tts.add_argument("--quiet", action="store_true")
    tts.set_defaults(func=cmd_data_tts)

    d = sub.add_parser("demo", help="train, shrink, quantize, generate, build and bench on an emulated board, end to end")
    d.add_argument("--out", default="demo-out")
    d.add_argument("--board", default="qemu-mps2-an386")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TinyeffError as e:
        print(f"tinyeff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyeff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
