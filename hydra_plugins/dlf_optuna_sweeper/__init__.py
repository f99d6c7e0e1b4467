"""Hyperparameter search with Optuna as a Hydra sweeper: ``-m hydra/sweeper=optuna`` (see
``optuna_sweeper.py``)."""
