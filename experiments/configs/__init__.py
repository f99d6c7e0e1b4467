"""Hydra config tree (a package too, so that experiments.run can be imported and run in-process by the tests)."""
