"""Search for the best model under a footprint budget (Optuna), on one machine or many.

``space`` (what a trial may change), ``objective`` (one trial: fit check, training, int8,
measurement), ``study`` (storage, workers, retries), ``results`` (reports, Pareto front, best
model), ``baseline`` (the linear text baseline), ``run`` (all of it, for the command line).
"""
