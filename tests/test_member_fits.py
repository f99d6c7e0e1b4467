"""The members of study=bagging and study=bias_variance (experiments/studies/ensembles.py): each
member, trained on its own rows of the study's tensors in one seeded fit, is the lone run of the
template's module on those rows."""

from __future__ import annotations

import pytorch_lightning as pl
import torch

from conftest import compose_config
from datamodules.device_loader import DeviceBatchLoader
from datamodules.member_loader import MemberBatchLoader
from experiments.build import supervised_module
from experiments.studies.ensembles import fit_members, predict, predict_own


def test_each_member_draws_its_seeds_permutation_of_its_own_rows():
    x, y = torch.arange(30.0).view(15, 2), torch.arange(15)
    rows = torch.tensor([[0, 0, 3, 5, 7, 9, 11, 14], [1, 2, 4, 6, 8, 10, 12, 13]])  # a resample with a repeat, a part
    together = MemberBatchLoader((x, y), 3, seeds=[4, 9], shuffle=True, rows=rows)
    assert len(together) == 3
    together.sampler.set_epoch(2)
    batches = list(together)
    for i, seed in enumerate([4, 9]):
        alone = DeviceBatchLoader((x[rows[i]], y[rows[i]]), 3, shuffle=True, seed=seed)
        alone.sampler.set_epoch(2)
        for (xb, yb), (xa, ya) in zip(batches, alone):
            assert torch.equal(xb[i], xa) and torch.equal(yb[i], ya)
    first = torch.cat([b[1][0] for b in batches])
    assert sorted(first.tolist()) == sorted(rows[0].tolist())  # every row of member 0, the repeat twice


def test_a_studys_member_is_the_lone_run_on_its_own_rows():
    cfg = compose_config("study=bias_variance", "optimizer=momentum", "regularization.weight_decay=1e-3")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 3, generator=g), torch.randint(0, 3, (40,), generator=g)
    rows = torch.stack([torch.randint(0, 40, (24,), generator=g), torch.arange(24)])
    seeds = [7, 11]
    fit = fit_members(cfg, 0.05, seeds, [8], "classification", x, y, rows, epochs=4, batch_size=8, num_outputs=3)
    first = fit.epoch_values["train/loss"]
    for i, seed in enumerate(seeds):
        member = cfg.copy()
        member.model = {"name": "mlp", "hidden": [8], "activation": "relu"}
        member.optimizer.lr = 0.05
        pl.seed_everything(seed, verbose=False)
        lone = supervised_module(member, [3], "tabular", 3, "classification")
        loader = DeviceBatchLoader((x[rows[i]], y[rows[i]]), 8, shuffle=True, seed=seed)
        pl.Trainer(
            max_epochs=4,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
        ).fit(lone, train_dataloaders=loader)
        lone.eval()
        with torch.no_grad():
            torch.testing.assert_close(predict(fit, x)[i], lone.net(x), rtol=1e-4, atol=1e-5)
    assert predict_own(fit, x, rows).shape == (2, 24, 3)
    assert not torch.allclose(predict(fit, x)[0], predict(fit, x)[1])
    assert first.shape == (2,) and torch.isfinite(first).all()


def test_members_that_diverge_end_the_study_in_one_line():
    import pytest

    from experiments.train import TrainingFailed

    cfg = compose_config("study=bias_variance", "optimizer=sgd")
    x, y = torch.randn(32, 2), torch.randn(32, 1) * 1e3
    with pytest.raises(
        TrainingFailed, match=r"^study=bias_variance: the members of width\(s\) \[8\] diverged at lr 1e\+06 \(train/loss is"
    ):
        fit_members(cfg, 1e6, [0, 1], [8], "regression", x, y, torch.arange(32).view(2, 16), epochs=20, batch_size=8, num_outputs=1)
