"""The entry point (run.py), its Hydra configs, config checks, wiring and result writing."""
