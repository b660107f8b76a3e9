"""Datasets the kit makes."""

from __future__ import annotations

from pathlib import Path

from tinyeff.cli.output import Progress


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


def cmd_data_recording(args) -> int:
    from tinyeff.data.recording import make_recording, write_recording
    from tinyeff.errors import TinyeffError
    from tinyeff.frontend import audio_frontend_of
    from tinyeff.train.run import Run

    fe = audio_frontend_of(Path(args.run))
    if fe is None:
        raise TinyeffError(f"'{args.run}' is not the run of an audio model; give the directory 'tinyeff train' wrote a "
                           "keyword model into")
    run = Run.load(Path(args.run))
    if run.data.raw_test is None:
        raise TinyeffError(f"the split of '{args.run}' keeps no raw test clips; train it again with --audio-frontend fixed or micro")
    out = Path(args.out)
    if (out.exists() or out.with_suffix(".json").exists()) and not args.force:
        raise TinyeffError(f"'{out}' or its truth file already exists; choose another --out or pass --force")
    rec = make_recording(run.data.raw_test, run.data.y_test, list(run.data.labels), args.seconds, fe.sample_rate_hz,
                         seed=args.seed, synthetic=run.data.synthetic)
    truth = write_recording(rec, out)
    keywords = sum(e.keyword for e in rec.events)
    print(f"{rec.seconds:,.1f} s recording in {out} (truth in {truth}): {keywords} keywords and "
          f"{len(rec.events) - keywords} other words from the test split of '{args.run}', in noise"
          + (f"; synthetic ({rec.synthetic})" if rec.synthetic else ""))
    print(f"play it through a device's keyword stream with 'tinyeff bench PROJECT --stream {out}'")
    return 0


def add_parsers(sub) -> None:
    da = sub.add_parser("data", help="make a dataset the kit can train on, or a recording to bench a keyword stream on")
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
    rec = dsub.add_parser("recording", help="a long recording of a keyword run's test clips at known times in noise, "
                          "with its truth, to bench a keyword stream on (tinyeff bench --stream)")
    rec.add_argument("--run", required=True, help="the run of a keyword model trained with --audio-frontend fixed or micro")
    rec.add_argument("--out", required=True, help="the .wav to write (the truth goes beside it, as .json)")
    rec.add_argument("--seconds", type=float, default=60.0, help="length of the recording (default 60)")
    rec.add_argument("--seed", type=int, default=0)
    rec.add_argument("--force", action="store_true", help="replace --out if it exists")
    rec.set_defaults(func=cmd_data_recording)
