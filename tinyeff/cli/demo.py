"""The README's main job, end to end on an emulated board."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tinyeff.cli.output import pct


KWS_KEYWORDS = "yes,no,up,down"  # spoken by espeak-ng, with _unknown_ and _silence_
KWS_CLIPS = 40
KWS_STREAM_S = 10  # seconds of recording the keyword stream hears


def cmd_demo(args) -> int:
    """The README's main job, end to end on an emulated board."""
    if args.kws:
        return kws_demo(Path(args.out), args.board)
    from tinyeff.cli import main  # each step runs as the command a user would type
    out = Path(args.out)
    run, small, project = out / "run", out / "small", out / f"firmware-{args.board}"
    steps = [
        ["train", "dscnn", "--data", "digits", "--out", str(run), "--force"],
        ["shrink", str(run), "--flash-kib", "12", "--ram-kib", "6", "--out", str(small), "--force"],
        ["inspect", str(small / "model.int8.tflite")],
        ["generate", str(small / "model.int8.tflite"), "--board", args.board, "--out", str(project), "--force"],
        # two emulators share the 450 samples where there are two cores (the report equals one emulator's)
        ["bench", str(project), "--data", str(small), "--json", str(out / "bench.json"),
         "--junit", str(out / "bench.xml"), "--plot", str(out / "bench.png"), "--jobs", str(min(2, os.cpu_count() or 1))],
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


def kws_demo(out: Path, board: str) -> int:
    """A keyword spotter from sound to answer: synthesized keywords, trained through the integer front end,
    generated with that front end for the board, benched from raw 16-bit PCM clip by clip, then as a stream."""
    from tinyeff.cli import main

    data, run, project = out / "kws-data", out / "kws-run", out / f"kws-firmware-{board}"
    steps = [
        ["data", "tts", "--keywords", KWS_KEYWORDS, "--clips", str(KWS_CLIPS), "--out", str(data), "--force"],
        ["train", "dscnn", "--data", str(data), "--audio-frontend", "fixed", "--width", "32", "--depth", "3",
         "--out", str(run), "--force"],
        ["inspect", str(run / "model.int8.tflite")],
        ["generate", str(run / "model.int8.tflite"), "--board", board, "--frontend", str(run), "--out", str(project), "--force"],
        ["bench", str(project), "--data", str(run), "--json", str(out / "kws-bench.json")],
        # the same firmware as a wake word hears: a recording of test clips in noise, hop by hop
        ["data", "recording", "--run", str(run), "--out", str(out / "kws-recording.wav"), "--seconds", str(KWS_STREAM_S),
         "--force"],
        ["bench", str(project), "--stream", str(out / "kws-recording.wav"), "--json", str(out / "kws-stream.json")],
    ]
    for step in steps:
        print(f"\n$ tinyeff {' '.join(step)}", flush=True)
        rc = main(step)
        if rc:
            return rc
    bench = json.loads((out / "kws-bench.json").read_text())
    print(f"\nfrom raw 16-bit PCM on the emulated board ({bench['synthetic_data']}): accuracy {pct(bench['accuracy'])} "
          f"(host TFLM int8 {pct(bench['host_accuracy'])}), {pct(bench['exact_agreement'])} of outputs bit-exact; "
          f"per inference {bench['frontend_latency_median']:,.0f} {bench['latency_unit']} in the front end and "
          f"{bench['latency_median']:,.0f} in the model (QEMU -icount; not a board's latency)")
    stream = json.loads((out / "kws-stream.json").read_text())
    score = stream["device_score"]
    print(f"as a stream: {score['hits']} of {score['keywords']} keywords detected, {score['false_accepts']} false accepts in "
          f"{stream['seconds']:g} s; {stream['exact_inferences']} of {stream['inferences']} inferences bit-exact with the host "
          f"simulation, reports {'identical' if stream['reports_equal'] else 'DIFFERENT'}")
    return 0


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
        f"on the emulated board: accuracy {pct(bench['accuracy'])} (host TFLM int8 {pct(bench['host_accuracy'])}), "
        f"{pct(bench['exact_agreement'])} of outputs bit-exact with host TFLM, "
        f"{bench['latency_median']:,.0f} {bench['latency_unit']} per inference (QEMU -icount; not a board's latency)",
    ]


def add_parsers(sub) -> None:
    d = sub.add_parser("demo", help="train, shrink, quantize, generate, build and bench on an emulated board, end to end")
    d.add_argument("--out", default="demo-out")
    d.add_argument("--board", default="qemu-mps2-an386")
    d.add_argument("--kws", action="store_true", help="instead: a keyword spotter from raw audio (keywords spoken by "
                   "espeak-ng, the integer front end on the device, benched from 16-bit PCM)")
    d.set_defaults(func=cmd_demo)
