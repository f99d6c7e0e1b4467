"""The entry point (run.py), its Hydra configs, config checks, wiring and result writing."""


def load_run(run_dir, ckpt: str = "tested"):
    """``module, datamodule = load_run(run_dir)``: a finished run's network with its tested
    checkpoint's weights (or ``ckpt="best"|"last"|<path>``), in eval mode, and its DataModule set up
    with the same split and normalization statistics (``experiments/evaluate.py``)."""
    from experiments.evaluate import load_run as load

    return load(run_dir, ckpt)
