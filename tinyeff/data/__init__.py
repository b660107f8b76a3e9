"""Datasets: built-in (digits, intents) and user data (.npz, CSV, a folder of .wav files per class)."""

from __future__ import annotations

from pathlib import Path

from tinyeff.data.dataset import Dataset
from tinyeff.errors import TinyeffError

BUILTIN = ("digits", "intents")


def load_dataset(spec: str, *, lang: str = "en", seed: int = 0, audio_arithmetic: str = "float") -> Dataset:
    """Load a dataset named by SPEC: a built-in name, a .npz or .csv file, or a folder of .wav files
    (through the audio front end AUDIO_ARITHMETIC: float or fixed MFCC, or TFLM's micro frontend; the last two
    as the firmware runs them)."""
    if spec == "digits":
        from tinyeff.data.digits import load_digits

        return load_digits(seed=seed)
    if spec == "intents":
        from tinyeff.data.intents import load_intents

        return load_intents(lang=lang, seed=seed)
    path = Path(spec)
    if not path.exists():
        raise TinyeffError(
            f"dataset '{spec}' is neither a built-in ({', '.join(BUILTIN)}) nor an existing file or folder; "
            "check the path"
        )
    if path.is_dir():
        from tinyeff.data.audio import frontend_for, load_wav_folder

        return load_wav_folder(path, seed=seed, fe=frontend_for(audio_arithmetic))
    if path.suffix == ".npz":
        from tinyeff.data.files import load_npz

        return load_npz(path)
    if path.suffix == ".csv":
        from tinyeff.data.files import load_csv

        return load_csv(path, seed=seed)
    raise TinyeffError(f"dataset file '{spec}' has an unknown type; give a .npz, a .csv (text,label) or a folder of .wav files")


__all__ = ["Dataset", "load_dataset", "BUILTIN"]
