"""Benching a project on devices: emulators, serial ports, labgrid places."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tinyeff.cli.output import Progress, pct
from tinyeff.errors import TinyeffError


def bench_summary(r) -> list[str]:
    unit = r.latency_unit
    lines = [
        f"bench of {r.samples} samples on {r.board} ({r.runtime} runtime) over {r.device}",
        f"  accuracy on the device   {pct(r.accuracy)}   (host TFLM: {pct(r.host_accuracy)})" if r.accuracy is not None
        else "  accuracy                 (the data has no labels)",
        *([f"  data                     synthetic ({r.synthetic_data}), not recorded"] if r.synthetic_data else []),
        *([f"  input                    {r.raw_input}, through the device's front end"] if r.raw_input else []),
        f"  agreement with host TFLM {pct(r.exact_agreement)} of outputs bit-exact, {pct(r.top1_agreement)} same top-1",
        f"  latency                  {r.latency_median:,.0f} {unit} per inference (median; min {r.latency_min:,.0f}, "
        f"max {r.latency_max:,.0f}; {r.timer} timer)" + (f", {r.latency_us_median:,.0f} us" if r.latency_us_median else "")
        + (" for the model" if r.frontend_latency_median is not None else ""),
        *([f"  front end                {r.frontend_latency_median:,.0f} {unit} per inference (median), before the model"]
          if r.frontend_latency_median is not None else []),
        (f"  memory                   arena {r.arena_bytes:,} B"
         + (f" ({r.arena_used_bytes:,} B of it used)" if r.arena_used_bytes != r.arena_bytes else "")
         + f" + stack {r.stack_bytes:,} B (painted high-water mark)") if r.arena_bytes is not None
        else "  memory                   not read (below)",
        f"  link                     {r.resets} device resets, {r.retries} exchanges retried, {r.errors} samples lost to errors"
        + (f"; {r.coded_exchanges} exchanges coded (each byte sent three times) against damage" if r.coded_exchanges else "")
        + ("; inputs read from a host file by the emulator (semihosting), not sent over its UART" if r.inputs_from_host_file else ""),
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


def _s(seconds: float) -> str:
    return f"{round(seconds, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def stream_summary(r) -> list[str]:
    import numpy as np

    unit, d, h = r.latency_unit, r.device_score, r.host_score
    audio_s = r.seconds or 1.0
    lines = [
        f"keyword stream over {r.seconds:,.1f} s of audio on {r.board} ({r.runtime} runtime) over {r.device}",
        *([f"  data                     synthetic ({r.synthetic}), not recorded"] if r.synthetic else []),
        f"  stream                   {r.hops:,} hops, the model every {r.every} ({r.inferences:,} inferences)",
        f"  agreement with the host  {r.exact_inferences:,} of {r.inferences:,} inferences bit-exact, reports "
        + ("identical" if r.reports_equal else "DIFFERENT") + " (host simulation on host TFLM)",
        f"  keywords                 {d.hits} of {d.keywords} detected ({pct(d.recall)})   (host: {h.hits} of {h.keywords})",
        f"  false accepts            {d.false_accepts} ({d.false_accepts_per_hour:,.0f} per hour: {d.on_other_words} on other "
        f"words, {d.repeats} repeats, {d.in_noise} in noise)   (host: {h.false_accepts})",
        (f"  latency                  {_s(np.median(d.latencies_s))} s after the word ends (median; "
         f"{_s(min(d.latencies_s))} to {_s(max(d.latencies_s))})") if d.latencies_s else "  latency                  (nothing detected)",
        "  by threshold             " + "; ".join(f"{w['threshold']:g}: {w['hits']}/{w['keywords']}, {w['false_accepts_per_hour']:,.0f} FA/h"
                                                 for w in r.sweep) + " (the device's outputs, averaged on the host)",
        f"  cost                     front end {r.frontend_latency / audio_s:,.0f} + model {r.model_latency / audio_s:,.0f} "
        f"{unit} per second of audio ({r.timer} timer)",
        f"  link                     {r.retries} exchanges retried; {r.wall_seconds:,.1f} s wall time",
    ]
    if unit == "emulated instructions":
        lines.append("  (an emulator counts instructions; it is not a board's cycle count or latency)")
    return lines


def _bench_stream(args, project) -> int:
    import contextlib
    import json

    from tinyeff.atomic import replace_file
    from tinyeff.data.recording import read_recording
    from tinyeff.harness.dut import Dut
    from tinyeff.harness.flash import open_devices
    from tinyeff.harness.stream_bench import bench_stream, stream_frontend

    if args.data or args.resume or args.junit or args.plot or args.min_accuracy is not None or (args.jobs or 1) > 1 \
            or len(args.port or []) > 1 or args.labgrid:
        raise TinyeffError("--stream plays one recording on one device; drop --data, --resume, --junit, --plot, "
                           "--min-accuracy and the extra devices")
    stream_frontend(project)  # before an emulator starts
    rec = read_recording(Path(args.stream))
    progress = Progress(args.quiet)
    with contextlib.ExitStack() as stack:
        (device,) = open_devices(project, args.port or [], args.emulator, None, stack, [])
        dut = Dut(device, timeout=args.timeout, host_file=not args.inputs_over_link)
        dut.wait_ready()
        result = bench_stream(project, dut, rec, lambda i, n: progress.transient(f"bench: hop {i}/{n}"))
    print("\n".join(stream_summary(result)))
    if args.json:
        replace_file(Path(args.json), json.dumps(result.to_json(), indent=1) + "\n")
    return 0 if result.exact else 1


def cmd_bench(args) -> int:
    import contextlib

    from tinyeff.harness.bench import Project, bench_inputs, bench_raw, data_synthetic, inputs_sha256, run_bench
    from tinyeff.harness.dut import Dut
    from tinyeff.harness.flash import open_devices
    from tinyeff.harness.report import Journal, resumable, write_json, write_junit, write_plot

    project = Project.load(Path(args.project))
    if args.stream:
        return _bench_stream(args, project)
    if not args.data:
        raise TinyeffError("bench needs --data (the run the model came from, or a dataset), or --stream RECORDING.wav")
    x, y = bench_inputs(args.data, project.model, args.lang, limit=args.limit or None)
    raw = bench_raw(args.data, project, limit=args.limit or None) if project.manifest.get("frontend") else None
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
            duts.append(Dut(device, timeout=args.timeout, host_file=not args.inputs_over_link))
            duts[-1].wait_ready()
        result = run_bench(project, duts, x, y,
                           lambda i, n: progress.transient(f"bench: sample {i}/{n}") if i < n else progress(f"bench: {n} samples done"),
                           on_sample=journal and journal.add, done=done, raw=raw)
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


def add_parsers(sub) -> None:
    be = sub.add_parser("bench", help="run a test set on the device: accuracy, agreement with host TFLM, latency, memory")
    be.add_argument("project", help="a directory made by 'tinyeff generate'")
    be.add_argument("--data", help="the run directory the model came from (its test split), or a dataset")
    be.add_argument("--stream", metavar="RECORDING.wav", help="play this recording (16-bit mono, with its truth in "
                    "RECORDING.json, as 'tinyeff data recording' writes) through the device's keyword stream: detections, "
                    "false accepts and latency, against the host simulation")
    be.add_argument("--port", action="append", help="the board's serial port as a pyserial URL (/dev/ttyACM0, socket://host:port, "
                    "rfc2217://...); repeat for several boards running the same firmware: they share the samples")
    be.add_argument("--emulator", choices=("qemu", "renode"), help="run on an emulator (default for qemu-* boards)")
    be.add_argument("--jobs", type=int, help="emulators started at once, sharing the samples (default 1)")
    be.add_argument("--labgrid", action="append", metavar="PLACE", help="acquire this place of a labgrid farm, load the "
                    "firmware through its GDB server, bench, release it; repeat for several places at once")
    be.add_argument("--coordinator", help="the labgrid coordinator as HOST:PORT (default: $LG_COORDINATOR, else 127.0.0.1:20408)")
    be.add_argument("--labgrid-wait", type=float, default=0.0, metavar="SECONDS",
                    help="wait this long for a place someone else holds (default: refuse at once, naming the holder)")
    be.add_argument("--inputs-over-link", action="store_true",
                    help="send every input byte over the serial link also to an emulator the harness starts (as a real "
                         "board takes them); by default such an emulator reads each input from a host file (semihosting), "
                         "which QEMU takes in far less host CPU than UART bytes")
    be.add_argument("--lang", default="en", help="language of the intents dataset, for --data intents (default en)")
    be.add_argument("--limit", type=int, help="bench only the first N samples")
    be.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply before retrying")
    be.add_argument("--min-accuracy", type=float, help="fail (exit 1, JUnit failure) below this accuracy, e.g. 0.9")
    be.add_argument("--json", help="write the full result as JSON (it grows sample by sample while the bench runs)")
    be.add_argument("--resume", action="store_true", help="keep the finished samples of the --json report of an interrupted "
                    "bench of the same inputs and run the rest")
    be.add_argument("--junit", help="write JUnit XML (one case per sample) for CI")
    be.add_argument("--plot", help="write a PNG of the latency distribution and per-layer latency")
    be.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    be.set_defaults(func=cmd_bench)
