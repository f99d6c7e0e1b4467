"""LightningModules (one per task kind), the networks they train (``nets/``) and the registries
of optimizers, schedulers and losses they are built from."""
