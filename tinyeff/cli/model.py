"""Training, quantizing, shrinking and inspecting models."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from tinyeff.cli.output import KIB, Progress, footprint_line, pct
from tinyeff.atomic import replace_file
from tinyeff.data.audio import ARITHMETIC
from tinyeff.errors import TinyeffError
from tinyeff.models.spec import POOLS


QAT_CHOICES = ("auto", "always", "off")
QAT_HELP = "quantization-aware fine-tuning: auto (when int8 loses more than 1 point on validation), always, off"


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
    data = load_dataset(args.data, lang=args.lang, seed=args.seed, audio_arithmetic=args.audio_frontend)
    if args.model == "dscnn":
        if data.kind == "text":
            raise TinyeffError(f"dataset '{args.data}' is text; train a 'projection' model on it")
        spec = dscnn_spec(data.input_shape, data.n_classes, width=args.width or 64, depth=args.depth or 3)
    else:
        if data.kind != "text":
            raise TinyeffError(f"dataset '{args.data}' is not text; train a 'dscnn' model on it")
        cfg = ProjectionConfig(features=args.features, max_tokens=args.max_tokens, ngram=args.ngram, min_ngram=args.min_ngram,
                               word_pairs=args.word_pairs)
        spec = projection_spec(data.n_classes, width=args.width or 64, depth=args.depth or 2, cfg=cfg, pool=args.pool)
    if args.kernel is not None:
        spec = dataclasses.replace(spec, kernel=args.kernel)
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
        progress(f"trained {result.epochs_run} epochs in {time.monotonic() - t0:.1f} s (best validation {pct(result.val_accuracy)} at epoch {result.best_epoch})")
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
    print(f"run {args.out}: float test accuracy {pct(metrics['float_accuracy'])}, int8 {pct(metrics['int8_accuracy'])}"
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
    replace_file(out, q.tflite)
    if q.method == "qat" and not args.out:  # the run's float model is the one its int8 model came from
        q.model.save(run.path / f".{MODEL}.tmp.keras")
        (run.path / f".{MODEL}.tmp.keras").replace(run.path / MODEL)
    fa, ia = evaluate(q.model, x_test, run.data.y_test), int8_accuracy(q.tflite, x_test, run.data.y_test)
    print(f"{'':14s}{'float':>10s}{'int8':>10s}")
    print(f"{'test accuracy':14s}{pct(fa):>10s}{pct(ia):>10s}   (drop {100 * (fa - ia):.2f} points)")
    how = {"ptq": f"post-training quantization (validation drop within {QAT_THRESHOLD_POINTS:g} point, or --qat off)",
           "qat": "quantization-aware fine-tuning, then post-training quantization"}[q.method]
    print(f"  by {how}")
    print(f"{out}: {footprint_line(measure(q.tflite, str(out)))}")
    return 0


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
    print(f"chose {c.name} widths {list(c.widths)}: int8 test accuracy {pct(c.int8_accuracy)} (float {pct(c.float_accuracy)})")
    print(f"  {Path(args.out) / INT8}: {footprint_line(c.footprint)}")
    if d.get("steps"):
        print(f"  distillation vs plain fine-tuning at equal footprint: better in {d['distilled_better']} of {d['steps']} steps, "
              f"worse in {d['plain_better']}, mean {d['mean_gain_points']:+.2f} points")
    print(f"  report: {Path(args.out) / 'candidates.csv'}, {Path(args.out) / 'pareto.png'}")
    return 0


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
    print("  ops: " + ", ".join(f"{n} x{k}" for n, k in report["op_counts"].items()))
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


def add_parsers(sub) -> None:
    t = sub.add_parser("train", help="train a dscnn or projection model and quantize it to int8")
    t.add_argument("model", choices=("dscnn", "projection"))
    t.add_argument("--data", required=True, help="digits, intents, a .npz, a text,label .csv, or a folder of .wav per class")
    t.add_argument("--out", required=True, help="run directory to create")
    t.add_argument("--lang", default="en", help="language of the intents dataset (default en)")
    t.add_argument("--audio-frontend", choices=ARITHMETIC, default="float",
                   help="a .wav folder's features: MFCC in float (NumPy) or in the integer arithmetic the firmware runs "
                   "bit-exactly (fixed), or TFLM's micro frontend (micro: pymicro-features, 98x40 per second); with fixed "
                   "or micro, generate --frontend RUN puts the front end on the device and bench sends raw PCM")
    t.add_argument("--width", type=int, help="channels per layer (default 64)")
    t.add_argument("--depth", type=int, help="separable blocks (dscnn, default 3) or conv layers (projection, default 2)")
    t.add_argument("--kernel", type=int,
                   help="the convolutions' kernel size (default 3; a searched plan may use 1, 5...)")
    t.add_argument("--features", type=int, default=64, help="projection: hashed features per token")
    t.add_argument("--max-tokens", type=int, default=16, help="projection: tokens per sentence")
    t.add_argument("--ngram", type=int, default=3, help="projection: the longest byte n-grams of each token")
    t.add_argument("--min-ngram", type=int, default=0,
                   help="projection: the shortest n-grams summed with them, every length between too (default: --ngram only)")
    t.add_argument("--word-pairs", action="store_true",
                   help="projection: each token's row also sums its pair with the token before (word order)")
    t.add_argument("--pool", choices=POOLS, default="max", help="projection: how token rows are pooled")
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
