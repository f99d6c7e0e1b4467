"""seeds=[...]: K seeded runs of one config in one fit. Each member follows the run seed=k makes
alone (its training losses step by step), comes out as a run of its own (metrics.json, best and last
checkpoints that load as a single run's), and the run's metrics.json holds the members' mean and
95% interval; bad input is one line."""

from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch

from conftest import SHRINK, compose_config, error_lines, run_dirs
from core.errors import ConfigError
from experiments import build
from experiments.seeds import check_seeds
from numerics.intervals import interval

SEEDS = [0, 3]
STEPS = 20


def _fit(module, dm, cfg, callbacks=()) -> None:
    """20 steps, validating every 5 (Lightning switches the modules to eval and back: batch norm and
    dropout must come back to training mode)."""
    pl.Trainer(
        max_steps=STEPS,
        val_check_interval=5,
        limit_val_batches=1,
        num_sanity_val_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=cfg.regularization.grad_clip,
        callbacks=list(callbacks),
        deterministic=True,
    ).fit(module, datamodule=dm)


class _Losses(pl.Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.rows.append(module.step_losses.clone())


CASES = {  # what the members must reproduce exactly: init, data order, optimizer state (per-member norms), Mixup draws
    "mlp": ("model=mlp",),
    "mlp-sam-clip-mixup": ("model=mlp", "optimizer=sam", "regularization.grad_clip=0.5", "regularization.mixup_alpha=0.4"),
    "mlp-regression-huber": ("model=mlp", "data=regression_outliers", "loss.name=huber", "regularization.l2=1e-3"),
    "cnn": ("model=cnn", "data=mnist1d"),
    "resnet": ("model=resnet", "data=mnist1d", "model.widths=[8,16]", "model.blocks=[1,1]"),
    "vit": ("model=vit", "data=mnist1d"),
    "lstm": ("model=lstm", "data=mnist1d", "data.dataset.as_sequence=true"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_member_follows_its_lone_run_step_by_step(case):
    overrides = (*SHRINK, *CASES[case], "data.batch_size=32")
    cfg = compose_config(*overrides, f"seeds=[{','.join(map(str, SEEDS))}]")
    dm = build.build_datamodule(cfg)
    members = build.build_members(cfg, dm)
    watch = _Losses()
    _fit(members, dm, cfg, [watch])
    together = torch.stack(watch.rows)  # (STEPS, K)
    for i, seed in enumerate(SEEDS):
        lone_cfg = compose_config(*overrides, f"seed={seed}")
        pl.seed_everything(seed, workers=True, verbose=False)
        lone_dm = build.build_datamodule(lone_cfg)
        lone = build.build_module(lone_cfg, lone_dm)
        calls = []
        lone.loss_fn.register_forward_hook(lambda m, args, out: calls.append(out.detach()) if m.training else None)
        _fit(lone, lone_dm, lone_cfg)
        alone = torch.stack(calls[:: 2 if lone_cfg.optimizer.name == "sam" else 1])  # SAM: the loss at w, not at w + e
        assert alone.shape == (STEPS,)
        torch.testing.assert_close(together[:, i], alone, rtol=1e-4, atol=1e-6, msg=f"{case}: member seed {seed}")
    assert not torch.allclose(together[:, 0], together[:, 1])  # and each is its own


def test_a_seeds_run_is_its_members_runs(train_run):
    from experiments.evaluate import load_run
    from experiments.train import resume
    from lightning_modules.classification import ClassificationModule

    run_dir, record = train_run("seeds=[0,1,2]", "callbacks.figures=true", name="members")
    members = record["members"]
    assert [m["seed"] for m in members] == [0, 1, 2] and record["seeds"] == [0, 1, 2]
    for name in ("test/acc", "test/loss", "val/acc_best"):
        mean, _, half = interval(m[name] for m in members)
        assert record[name] == pytest.approx(mean) and record[f"{name}_ci"] == pytest.approx(half)
    assert record["test/acc"] > 0.9 and len({m["test/acc"] for m in members}) > 1  # trained, and each its own
    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["members"] == members
    history = (run_dir / "history.csv").read_text().splitlines()[0].split(",")
    assert {"val/acc", "val/acc/seed0", "val/acc/seed2", "train/loss/seed1"} <= set(history)
    for m in members:
        here = run_dir / m["run"]
        assert json.loads((here / "metrics.json").read_text()) == m
        assert (here / "checkpoints" / "last.ckpt").is_file() and m["test_checkpoint"].startswith("checkpoints/best-epoch")
        assert len((here / "history.csv").read_text().splitlines()) == 1 + 3
        module, dm = load_run(here)  # a member is a run: its network and its split
        x, y = dm.tensors("test")
        with torch.no_grad():
            acc = (module(x).argmax(1) == y).float().mean().item()
        assert acc == pytest.approx(m["test/acc"], abs=1e-6)
        single = ClassificationModule.load_from_checkpoint(here / m["test_checkpoint"], weights_only=True)
        torch.testing.assert_close(single.net.state_dict(), module.net.state_dict())
    with pytest.raises(ConfigError, match="holds weights only"):  # a member is resumed through its run
        resume(run_dir / members[0]["run"], run_dir / members[0]["run"], max_epochs=5)
    assert (run_dir / "figures" / "learning_curves.png").is_file()


def test_a_fresh_run_never_writes_into_a_member_directory_that_holds_files(tmp_path):
    from experiments.train import train

    taken = tmp_path / "run" / "members" / "seed1"
    taken.mkdir(parents=True)
    (taken / "metrics.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds files of another run"):
        train(compose_config(*SHRINK, "seeds=[0,1]"), tmp_path / "run")
    assert (taken / "metrics.json").read_text() == "{}" and not (tmp_path / "run" / "checkpoints").exists()


def test_resume_continues_every_member(train_run):
    from experiments.train import resume

    run_dir, first = train_run("seeds=[0,1]", "trainer.max_epochs=2", name="short")
    record = resume(run_dir, run_dir, report=False, max_epochs=4)
    assert record["epochs"] == 4 and [m["epochs"] for m in record["members"]] == [4, 4]
    for m in record["members"]:
        rows = (run_dir / m["run"] / "history.csv").read_text().splitlines()
        assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert record["test/loss"] < first["test/loss"]


def test_each_member_is_probed_as_its_lone_run(train_run):
    probe = ("callbacks.sharpness.enabled=true", "callbacks.sharpness.max_samples=512", "trainer.max_epochs=2")
    _, record = train_run("seeds=[0,1]", *probe, name="members")
    _, alone = train_run("seed=1", *probe, name="alone")
    member = record["members"][1]
    assert member["sharpness/train_loss"] == pytest.approx(alone["sharpness/train_loss"], rel=1e-4)
    assert member["sharpness/hessian_top"] == pytest.approx(alone["sharpness/hessian_top"], rel=1e-3)
    assert record["sharpness/keskar"] == pytest.approx((member["sharpness/keskar"] + record["members"][0]["sharpness/keskar"]) / 2)


def test_each_member_stops_on_its_own(train_run):
    _, record = train_run("seeds=[0,1,2,3]", "callbacks.stop_at_train_acc=0.95", "trainer.max_epochs=8", name="stops")
    epochs = [m["epochs"] for m in record["members"]]
    assert all(e < 8 for e in epochs) and record["epochs"] == max(epochs)
    assert all(m["steps"] == m["epochs"] * (record["steps"] // record["epochs"]) for m in record["members"])


BAD = [
    ("seeds=[]", "seeds=[]: must be a non-empty list of distinct integers >= 0"),
    ("seeds=5", "seeds=5: must be a non-empty list"),
    ("seeds=[0,1,1]", "seeds=[0, 1, 1]: 1 is repeated"),
    ("seeds=[0,-2]", "seeds=[0, -2]: -2 is not an integer >= 0"),
    ("seeds=[0,1.5]", "seeds=[0, 1.5]: 1.5 is not an integer >= 0"),
    ("seeds=[0,1] model=vae", "with model=vae: members are for the discriminative families"),
    ("seeds=[0,1] trainer=ddp_cpu", "with trainer.strategy=ddp"),
    ("seeds=[0,1] optimizer=adamp", "with optimizer=adamp: one optimizer steps the members' stacked tensors"),
    ("seeds=[0,1] optimizer=sam optimizer.base=adamp", "with optimizer.base=adamp"),
    ("seeds=[0,1] scheduler=plateau", "with scheduler=plateau: would follow each member's own val/loss"),
    ("seeds=[0,1] tune.lr_find=true", "with tune.lr_find=true: is not done per member"),
    ("members_dir=.. seeds=null", "members_dir=..: where the members of seeds=[...] go; without seeds there are none"),
    ("seeds=[0,1] members_dir=/tmp/x", "members_dir=/tmp/x: accepted: null (<run_dir>/members) or .."),
    ("seeds=[0,1] callbacks.checkpoint.monitor=train/loss", "monitor a val/ metric"),
    ("seeds=[0,1] regularization.early_stopping=2 +trainer.val_check_interval=0.5", "validate every epoch, or drop early stopping"),
    ("seeds=[0,1] data.loader=dataloader", "with data.loader=dataloader"),
    ("seeds=[0,1] study=regularizers", "with study=regularizers: a study sets its members' seeds itself"),
]


@pytest.mark.parametrize("overrides, expected", BAD, ids=[b[0] for b in BAD])
def test_bad_seeds_are_one_line(overrides, expected):
    with pytest.raises(ConfigError, match=None) as info:
        check_seeds(compose_config(*overrides.split()))
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_seeds_with_seed_given_exit_2(cli, tmp_path):
    assert "seed= given too" in str(pytest.raises(ConfigError, check_seeds, compose_config("seeds=[0,1]"), ["seed=3"]).value)
    code, _, err = cli("seeds=[0,1]", "seed=3", "callbacks.progress=none")
    assert code == 2 and error_lines(err) == [
        "error: seeds=[0, 1] with seed= given too: seeds=[...] trains one member per seed; drop one of them"
    ]
    assert run_dirs(tmp_path) == []


def test_members_follow_the_mode_lightning_sets_by_flag():
    """Lightning restores train/eval modes by setting each module's ``training`` flag: the members'
    dropout and batch norm must follow it (else they stay in eval mode after the first validation)."""
    cfg = compose_config("model=cnn", "data=mnist1d", "regularization.dropout=0.5", "seeds=[0,1]")
    module = build.build_members(cfg, build.build_datamodule(cfg))
    x = torch.randn(2, 8, 1, 40)
    module.eval()
    for m in module.modules():
        m.training = True
    assert not torch.equal(module.net(x), module.net(x))  # dropout draws
    for m in module.modules():
        m.training = False
    assert torch.equal(module.net(x), module.net(x))


def test_a_studys_fit_clears_an_unfinished_member_and_refuses_a_finished_one(tmp_path):
    """members_dir=.. (a study's layout): the fit's members sit beside it; a stopped earlier run of one
    seed is cleared by the fit that trains it again, a finished one is never overwritten."""
    from experiments.train import train

    member = tmp_path / "none"
    (member / "seed0" / "checkpoints").mkdir(parents=True)
    (member / "seed0" / "checkpoints" / "best-epoch007.ckpt").write_text("a stopped lone run's")
    fit = member / "fit_seeds0-1"
    fit.mkdir()
    record = train(compose_config(*SHRINK, "seeds=[0,1]", "members_dir=..", "trainer.max_epochs=1"), fit, report=False)
    assert [m["run"] for m in record["members"]] == ["../seed0", "../seed1"]
    assert not (member / "seed0" / "checkpoints" / "best-epoch007.ckpt").exists() and (member / "seed0" / "metrics.json").is_file()
    again = member / "fit_seeds0-1-again"
    again.mkdir()
    with pytest.raises(ConfigError, match="already holds files of another run"):
        train(compose_config(*SHRINK, "seeds=[0,1]", "members_dir=..", "trainer.max_epochs=1"), again, report=False)
