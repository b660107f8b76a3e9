"""Training (with distillation) and the run directory that holds its results."""

from tinyeff.train.fit import FitResult, TrainConfig, evaluate, fit, logits
from tinyeff.atomic import write_run
from tinyeff.train.run import Run, features_of

__all__ = ["FitResult", "TrainConfig", "evaluate", "fit", "logits", "Run", "features_of", "write_run"]
