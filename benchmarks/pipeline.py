"""Times the default pipeline (train + shrink, which quantizes every candidate) on this machine
and prints the footprint table of the trained and the chosen model: a DS-CNN for image and audio
data, a projection model for text.

Run: .venv/bin/python benchmarks/pipeline.py [--flash-kib 12 --ram-kib 6]            (digits)
     .venv/bin/python benchmarks/pipeline.py --data intents --flash-kib 16 --ram-kib 8 [--lang de]
Every figure is measured: wall time of each CLI command, .tflite bytes, host TFLM arena bytes,
test accuracy of the int8 model run by LiteRT.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINYEFF = [sys.executable, "-m", "tinyeff.cli"]


def timed(args: list[str]) -> float:
    t0 = time.monotonic()
    subprocess.run(TINYEFF + args + ["--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - t0


def model_kind(data: str) -> str:
    """The model the default pipeline trains for DATA: a projection model for text, else a DS-CNN."""
    return "projection" if data == "intents" or data.endswith(".csv") else "dscnn"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="digits")
    p.add_argument("--lang", default="en")
    p.add_argument("--flash-kib", default="12")
    p.add_argument("--ram-kib", default="6")
    a = p.parse_args()
    kind = model_kind(a.data)
    with tempfile.TemporaryDirectory() as tmp:
        run, small = Path(tmp) / "run", Path(tmp) / "small"
        t_train = timed(["train", kind, "--data", a.data, "--lang", a.lang, "--out", str(run)])
        t_shrink = timed(["shrink", str(run), "--flash-kib", a.flash_kib, "--ram-kib", a.ram_kib, "--out", str(small)])
        trained = json.loads((run / "metrics.json").read_text())
        chosen = json.loads((small / "metrics.json").read_text())
        cands = json.loads((small / "candidates.json").read_text())
    lang = f" ({a.lang})" if a.data == "intents" else ""
    print(f"{a.data}{lang} {kind} pipeline on {os.cpu_count()} cores: train {t_train:.1f} s + shrink (prune, fine-tune, quantize, measure) "
          f"{t_shrink:.1f} s = {t_train + t_shrink:.1f} s; {len(cands['candidates'])} candidates")
    print(f"budget: flash {a.flash_kib} KiB, RAM {a.ram_kib} KiB (host TFLM arena)")
    print("| model | flash B | RAM B (arena) | MACs | float acc | int8 acc |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, m in (("trained", trained), (f"chosen ({cands['chosen']})", chosen)):
        fp = m["footprint"]
        print(f"| {name} | {fp['flash_bytes']:,} | {fp['ram_bytes']:,} | {fp['macs']:,} | "
              f"{100 * m['float_accuracy']:.1f} % | {100 * m['int8_accuracy']:.1f} % |")
    d = cands["distillation_vs_plain"]
    print(f"distillation vs plain fine-tuning at equal widths: better in {d['distilled_better']} of {d['steps']} steps, "
          f"mean {d['mean_gain_points']:+.2f} points")


if __name__ == "__main__":
    main()
