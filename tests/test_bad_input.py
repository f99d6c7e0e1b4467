"""Bad input fails before training: one line on stderr naming the key, the value and what is
accepted; exit status 2; no run directory left behind."""

from __future__ import annotations

import pytest

from conftest import error_lines, run_cli
from lightning_modules.optimizers import OPTIMIZERS

CASES = {
    "unknown group option": (["optimizer=adamm"], f"error: optimizer=adamm: unknown option; valid: {', '.join(OPTIMIZERS.list())}"),
    "unknown key": (["optimizer.lrr=0.1"], "error: optimizer.lrr=0.1: unknown key; keys under optimizer: betas, eps, lr, name"),
    "unknown top-level key": (["sed=3"], "error: sed=3: unknown key; keys under the top level: callbacks, data,"),
    "lr zero": (["optimizer.lr=0"], "error: optimizer.lr=0: must be a number > 0"),
    "lr negative": (["optimizer.lr=-0.1"], "error: optimizer.lr=-0.1: must be a number > 0"),
    "lr not a number": (["optimizer.lr=fast"], "error: optimizer.lr='fast': must be a number > 0"),
    "batch size zero": (["data.batch_size=0"], "error: data.batch_size=0: must be an integer >= 1"),
    "batch size not an integer": (["data.batch_size=6.5"], "error: data.batch_size=6.5: must be an integer >= 1"),
    "epochs zero": (["trainer.max_epochs=0"], "error: trainer.max_epochs=0: must be an integer >= 1"),
    "epochs not a number": (["trainer.max_epochs=ten"], "error: trainer.max_epochs='ten': must be an integer >= 1"),
    "val fraction one": (["data.val_fraction=1"], "error: data.val_fraction=1: must be a number in [0, 1) or null"),
    "test fraction negative": (["data.test_fraction=-0.2"], "error: data.test_fraction=-0.2: must be a number in [0, 1)"),
    "fractions sum": (
        ["data.val_fraction=0.5", "data.test_fraction=0.5"],
        "error: data.val_fraction + data.test_fraction = 0.5 + 0.5: must be < 1",
    ),
    "seed not a number": (["seed=abc"], "error: seed='abc': must be an integer >= 0"),
    "dropout one": (["regularization.dropout=1.0"], "error: regularization.dropout=1.0: must be a number in [0, 1)"),
    "unknown registry name": (["model.activation=swish"], "error: model.activation='swish': unknown; valid: elu, gelu, leaky_relu, relu"),
    "key the optimizer lacks": (
        ["optimizer=sgd", "+optimizer.betas=[0.9,0.99]"],
        "error: optimizer.betas: not accepted by optimizer 'sgd'",
    ),
    "weight decay on the optimizer": (
        ["+optimizer.weight_decay=0.1"],
        "error: optimizer.weight_decay: not an optimizer key; set regularization.weight_decay",
    ),
    "dropout on the model": (["+model.dropout=0.2"], "error: model.dropout: not a model key; set regularization.dropout"),
    "plateau without validation": (
        ["scheduler=plateau", "data.val_fraction=0", "test_ckpt=last"],
        "error: scheduler=plateau monitors val/loss",
    ),
    "negative l2": (["regularization.l2=-1e-4"], "error: regularization.l2=-0.0001: must be a number >= 0"),
    "sam rho zero": (["optimizer=sam", "optimizer.rho=0"], "error: optimizer.rho=0: must be a number > 0"),
    "k-fold k below 2": (["data.kfold.k=1", "data.val_fraction=0"], "error: data.kfold.k=1: must be an integer >= 2 or null"),
    "k-fold index beyond k": (
        ["data.kfold.k=3", "data.kfold.index=3", "data.val_fraction=0"],
        "error: data.kfold.index=3: must be < data.kfold.k=3",
    ),
    "file dataset without root": (["data=mnist"], "error: data.root: missing; dataset 'mnist' reads local files laid out as"),
    "missing root folder": (["data=cifar10", "data.root=/no/such/folder"], "error: data.root='/no/such/folder': not a directory"),
    "augment on tabular data": (
        ["data=moons", "regularization.augment=true"],
        "error: regularization.augment=true: no label-preserving augmentation for tabular data",
    ),
    "dataset key it lacks": (
        ["data=moons", "+data.dataset.radius=2"],
        "error: data.dataset.radius: not accepted by dataset 'moons'; accepted: n_samples, noise, seed",
    ),
    "a number where a list goes": (["data=moons", "model.hidden=64"], "error: model.hidden=64: must be a list (the default is (256, 256))"),
    "a fraction where an integer goes": (
        ["data=moons", "data.dataset.n_samples=10.5"],
        "error: data.dataset.n_samples=10.5: must be an integer (the default is 1000)",
    ),
    "the generator refuses a value": (
        ["data=moons", "data.dataset.seed=-1"],
        "error: data=moons data.dataset.n_samples=1000 data.dataset.noise=0.2 data.dataset.seed=-1: refused by the dataset's generator",
    ),
    "torch refuses a value": (["optimizer.betas=[2,0.9]"], "error: optimizer.name=adam optimizer.lr=0.001 optimizer.betas=[2, 0.9]"),
    "lightning refuses a value": (["+trainer.strategy=dpp"], "error: trainer.accelerator=cpu "),
    "mix probability above one": (["regularization.mix_prob=1.5"], "error: regularization.mix_prob=1.5: must be a number in [0, 1]"),
    "family and data shape": (
        ["model=lenet", "data=sequences"],
        "error: model=lenet: cannot take sequence data of shape (50, 2); it takes image, signal data",
    ),
    "key the family lacks": (
        ["model=gru", "+model.depth=3"],
        "error: model.depth: not a hyperparameter of model 'gru'; it has: hidden, layers, bidirectional, readout",
    ),
    "batch norm not a boolean": (
        ["regularization.batch_norm=maybe"],
        "error: regularization.batch_norm='maybe': must be true, false or null",
    ),
    "resume with other overrides": (
        ["resume=outputs/none", "optimizer.lr=0.5"],
        "error: resume=outputs/none: continues with the run's own saved config (only trainer.max_epochs and callbacks.progress may be "
        "given); drop the other overrides (optimizer.lr=0.5)",
    ),
    "resume of a folder that is no run": (
        ["resume=/tmp"],
        "error: resume=/tmp: is not a run directory with .hydra/config.yaml and checkpoints/last.ckpt",
    ),
    "lr finder's suggestion without the finder": (
        ["tune.apply=true"],
        "error: tune.apply=true: applies the range test's suggestion; set tune.lr_find=true too",
    ),
    "lr finder's range upside down": (
        ["tune.lr_find=true", "tune.min_lr=0.1", "tune.max_lr=0.01"],
        "error: tune.max_lr=0.01: must be > tune.min_lr=0.1",
    ),
    "lr finder on several processes": (
        ["tune.lr_find=true", "trainer=ddp_cpu"],
        "error: tune.lr_find=true with trainer.strategy=ddp trainer.devices=2 trainer.num_nodes=1: the range test runs in one process",
    ),
    "lr finder for two optimizers": (
        ["tune.lr_find=true", "model=gan"],
        "error: tune.lr_find=true: model=gan steps its optimizers by hand and does not support it; use false",
    ),
    "trainer argument lightning refuses mid-run": (
        ["+trainer.val_check_interval=1.5"],
        "error: trainer.val_check_interval=1.5: must be a fraction of an epoch in (0, 1] or a number of batches >= 1",
    ),
    "validation interval longer than an epoch": (
        ["+trainer.val_check_interval=500"],
        "error: trainer.val_check_interval=500: more batches than an epoch has (20)",
    ),
    "no gradient accumulation": (
        ["+trainer.accumulate_grad_batches=0"],
        "error: trainer.accumulate_grad_batches=0: must be an integer >= 1",
    ),
    "unknown profiler": (["+trainer.profiler=nope"], "error: trainer.profiler='nope': must be null, simple, advanced or pytorch"),
    "lightning's own refusal": (["+trainer.limit_train_batches=1.5"], "error: trainer.accelerator=cpu "),
    "lr finder diverging to nan": (
        ["tune.lr_find=true", "tune.early_stop_threshold=null", "tune.max_lr=100", "optimizer=sgd"],
        "error: tune.lr_find=true: train/loss is nan at step",
    ),
    "lr finder's suggestion over a given lr": (
        ["tune.lr_find=true", "tune.apply=true", "optimizer.lr=0.1"],
        "error: tune.apply=true: trains with the range test's suggestion, not optimizer.lr=0.1; drop one of them",
    ),
    "wandb offline not a boolean": (
        ["logger=wandb", "logger.wandb.offline=null"],
        "error: logger.wandb.offline=null: must be true or false",
    ),
    "normalization axes": (
        ["data=moons", "data.normalize_per=channel"],
        "error: data.normalize_per=channel: tabular data has no channels; use feature or auto",
    ),
}


@pytest.mark.parametrize("args,expected", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_clear_line(cli, tmp_path, args, expected):
    """The real command line, run in this process (tests/conftest.py::cli); one case below as a process of its own."""
    code, _, err = cli(*args)
    lines = error_lines(err)
    assert code == 2 and len(lines) == 1 and lines[0].startswith(expected) and "Traceback" not in err, err
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


def test_bad_input_as_its_own_process(tmp_path):
    proc = run_cli("optimizer.lr=-1", cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stderr) == (2, "error: optimizer.lr=-1: must be a number > 0\n")
    assert not (tmp_path / "outputs").exists()


def test_a_bug_while_building_keeps_its_traceback(train_run, monkeypatch):
    """Only ConfigError (core/errors.py) becomes a one-line exit 2; any other exception is a bug."""
    import experiments.build as build
    from core.errors import ConfigError

    def broken(cfg, dm):
        raise ValueError("a bug, not a setting")

    monkeypatch.setattr(build, "build_module", broken)
    with pytest.raises(ValueError, match="a bug, not a setting") as raised:
        train_run()
    assert not isinstance(raised.value, ConfigError)
