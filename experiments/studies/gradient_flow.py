"""Gradient flow through depth and time (``study=gradient_flow``), two parts, each setting's seeds
trained together as one seeded fit (experiments/studies/ensembles.py::fit_members):

* depth — MLPs of ``study.depth.depths`` hidden layers of one width on digits, for each activation ×
  initialization: the weight-gradient norm of every layer and the spread of every hidden layer's
  activation on a fixed batch of training rows, at initialization and after ``steps`` steps of SGD
  with momentum, and the test accuracy reached (Glorot & Bengio 2010; He et al. 2015);
* recurrence — rnn, lstm and gru on the adding problem at ``study.recurrence.lengths``: ‖∂loss/∂h_t‖
  for every step t, the recurrence unrolled by hand with the layer's own weights, at initialization
  and after training, and the test MSE against predicting the training targets' mean (Bengio et al. 1994; Hochreiter &
  Schmidhuber 1997). Measurements: experiments/studies/gradient_flow_measure.py; figures
  gradient_flow_plots.py; the report and its verdicts gradient_flow_report.py.

Each part names its own optimizer and learning rate (``study.<part>.optimizer``, ``.lr``,
``.grad_clip``): the command line's ``optimizer=``, ``regularization.*``, ``model=``, ``data=``, ...
are refused rather than ignored; ``trainer=`` picks the device."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from core.errors import ConfigError
from core.rules import check as check_rule
from core.rules import number
from experiments.studies.common import Clock, check_kept, finish, kept, log
from experiments.studies.ensembles import GROUP, check_trainer, refuse_unread
from experiments.studies.members import check_seeds
from numerics.intervals import interval

PARTS = ("depth", "recurrence")
MODELS = ("rnn", "lstm", "gru")
POSITIVE_INT = number(1, integer=True)
DIGITS_TRAIN, DIGITS_TEST = 1438, 359  # scikit-learn's 1,797 digits, a fifth held out
DEPTH_METRICS = ("grad_ratio_first_last", "log10_grad_ratio_first_last", "log10_grad_first", "grad_ratio_first_last_trained",
                 "log10_grad_ratio_first_last_trained", "act_std_first", "act_std_last", "act_std_ratio_last_first",
                 "log10_act_std_drift", "train_acc", "test_acc")  # fmt: skip
RECURRENCE_METRICS = ("test_mse", "baseline_mse", "mse_ratio", "grad_ratio_first_last", "log10_grad_ratio_first_last",
                      "decay_per_step", "decay_r2", "log10_grad_ratio_first_last_trained", "decay_per_step_trained",
                      "decay_r2_trained")  # fmt: skip


UNREAD = (
    "builds its own networks and data (the study.* keys); beside them it reads only trainer= (the device)",
    {
        "optimizer": "sets each part's optimizer and learning rate; use study.depth.optimizer, study.depth.lr, "
        "study.recurrence.optimizer, study.recurrence.lr",
        "regularization.grad_clip": "sets each part's clipping; use study.depth.grad_clip, study.recurrence.grad_clip",
    },
)
SAME = "zeros"  # model.init's constant init: every unit of a layer the same value and gradient


def check_list(key: str, value, what: str) -> None:
    """A list (a single value would be read character by character or not at all), non-empty."""
    if not OmegaConf.is_list(value):
        raise ConfigError(f"{key}={value}: a list is expected, e.g. {key}=[{value}]; {what}")
    if not value:
        raise ConfigError(f"{key}=[]: a non-empty list is expected; {what}")


def check_optimizer_name(key: str, value) -> None:
    options = sorted(p.stem for p in GROUP.glob("*.yaml"))
    if value not in options:
        raise ConfigError(f"{key}={value!r}: unknown; valid: {', '.join(options)}")


def check_common(part: str, p: DictConfig) -> None:
    for key in ("steps", "batch_size", "probe_rows"):
        check_rule(f"study.{part}.{key}", p[key], POSITIVE_INT)
    check_rule(f"study.{part}.lr", p.lr, number(0, lo_open=True))
    check_rule(f"study.{part}.grad_clip", p.grad_clip, number(0, lo_open=True, optional=True))
    check_optimizer_name(f"study.{part}.optimizer", p.optimizer)


def check(s: DictConfig) -> list[str]:
    """The parts to run, after every key is checked."""
    from lightning_modules.nets.common import ACTIVATIONS
    from lightning_modules.nets.init import INITS

    check_seeds(s.seeds, at_least=2, distinct=True)
    only = s.only
    if isinstance(only, str):
        raise ConfigError(f"study.only={only}: a list of parts, e.g. study.only=[{only}]; parts: {', '.join(PARTS)}")
    if only is not None and (not only or any(p not in PARTS for p in only)):
        raise ConfigError(f"study.only={list(only)}: unknown or empty; parts: {', '.join(PARTS)}")
    d, r = s.depth, s.recurrence
    inits = tuple(i for i in INITS if i != SAME)
    for key, given, what in (
        ("study.depth.depths", d.depths, "hidden layers, integers >= 1"),
        ("study.depth.activations", d.activations, f"valid: {', '.join(sorted(ACTIVATIONS))}"),
        ("study.depth.inits", d.inits, f"valid: {', '.join(inits)}"),
        ("study.recurrence.lengths", r.lengths, "the adding problem's steps, integers >= 2"),
        ("study.recurrence.models", r.models, f"valid: {', '.join(MODELS)}"),
    ):
        check_list(key, given, what)
    if SAME in d.inits:
        raise ConfigError(
            f"study.depth.inits={list(d.inits)}: '{SAME}' gives every unit of a layer the same value and gradient, so no flow to "
            f"measure; valid: {', '.join(inits)}"
        )
    if any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in d.depths):
        raise ConfigError(f"study.depth.depths={list(d.depths)}: a non-empty list of integers >= 1 (hidden layers)")
    check_rule("study.depth.width", d.width, POSITIVE_INT)
    for key, given, valid in (("activations", d.activations, sorted(ACTIVATIONS)), ("inits", d.inits, inits)):
        bad = [x for x in given if x not in valid]
        if bad:
            raise ConfigError(f"study.depth.{key}={list(given or [])}: unknown or empty {bad}; valid: {', '.join(valid)}")
    check_rule("study.depth.init_std", d.init_std, number(0, lo_open=True))
    if any(not isinstance(x, int) or isinstance(x, bool) or x < 2 for x in r.lengths):
        raise ConfigError(f"study.recurrence.lengths={list(r.lengths)}: a non-empty list of integers >= 2 (the adding problem's steps)")
    bad = [m for m in r.models if m not in MODELS]
    if bad:
        raise ConfigError(f"study.recurrence.models={list(r.models)}: unknown or empty {bad}; valid: {', '.join(MODELS)}")
    check_rule("study.recurrence.hidden", r.hidden, POSITIVE_INT)
    check_rule("study.recurrence.n_train", r.n_train, number(10, integer=True))
    check_rule("study.recurrence.n_test", r.n_test, number(10, integer=True))
    for part in PARTS:
        check_common(part, s[part])
    if d.probe_rows > DIGITS_TRAIN:
        raise ConfigError(f"study.depth.probe_rows={d.probe_rows}: at most the {DIGITS_TRAIN} training images")
    if r.probe_rows > r.n_train:
        raise ConfigError(f"study.recurrence.probe_rows={r.probe_rows}: at most study.recurrence.n_train={r.n_train}")
    return list(only) if only else list(PARTS)


def part_cfg(cfg: DictConfig, part: str) -> DictConfig:
    """The config a part's fits are built from: its optimizer option (every key but lr from the
    option's file), lr and clipping."""
    from experiments.build import check_components
    from experiments.seeds import check_member_optimizer

    p = cfg.study[part]
    member = cfg.copy()
    with open_dict(member):
        member.optimizer = OmegaConf.load(GROUP / f"{p.optimizer}.yaml")
        member.optimizer.lr = float(p.lr)
        member.regularization.grad_clip = p.grad_clip
    check_member_optimizer(member, f"study.{part}.optimizer={p.optimizer}: study={cfg.study.name}")
    check_components(member)
    return member


def settings(s: DictConfig, part: str) -> dict:
    """What a part's cached units were made with: a resume with other settings is refused."""
    p = OmegaConf.to_container(s[part])
    for key in ("depths", "activations", "inits", "models", "lengths"):  # which units run: free to change on resume
        p.pop(key, None)
    return {"seeds": list(s.seeds), **p}


def digits_split():
    """Digits flattened to 64 features, a fixed 80/20 split (split seed 0), scaled by the training split's mean and std."""
    from datamodules.datasets import load

    ds = load("digits")
    x, y = torch.from_numpy(ds.x.reshape(len(ds.x), -1)), torch.from_numpy(ds.y)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(x)))
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    assert len(train) == DIGITS_TRAIN, len(train)
    mean, std = x[train].mean(), x[train].std()
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


def depth_unit(member: DictConfig, s: DictConfig, activation: str, init: str, depth: int, data) -> dict:
    from experiments.studies.ensembles import fit_members, predict
    from experiments.studies.gradient_flow_measure import AtStart, lone_members, mlp_profile

    d = s.depth
    x, y, xt, yt = data
    px, py = x[: d.probe_rows], y[: d.probe_rows]
    spec = {"name": "mlp", "hidden": [int(d.width)] * depth, "activation": activation, "init": init, "init_std": float(d.init_std)}
    start = AtStart(lambda net, i: mlp_profile(net, px, py))
    rows = torch.arange(len(x)).expand(len(s.seeds), -1)
    fit = fit_members(member, d.lr, list(s.seeds), [], "classification", x, y, rows, 0, d.batch_size, 10, model=spec,
                      callbacks=(start,), max_steps=d.steps)  # fmt: skip
    trained = [mlp_profile(net, px, py) for net in lone_members(fit)]
    test_acc = (predict(fit, xt).argmax(-1) == yt).float().mean(1)
    train_acc = (predict(fit, x).argmax(-1) == y).float().mean(1)
    out, profiles = [], []
    for i, seed in enumerate(s.seeds):
        a, b = start.found[i], trained[i]
        out.append({"part": "depth", "seed": seed, "activation": activation, "init": init, "depth": depth,
                    "train_acc": float(train_acc[i]), "test_acc": float(test_acc[i])})  # fmt: skip
        profiles.append({"seed": seed, "grad_init": a["grad"], "grad_trained": b["grad"], "act_std_init": a["act_std"],
                         "act_std_trained": b["act_std"]})  # fmt: skip
    return {"rows": out, "profiles": profiles}


def log10(v: float) -> float:
    """log10 with 0 read as 10^-300 (inf and nan pass through)."""
    return math.log10(max(v, 1e-300)) if not math.isnan(v) else math.nan


def ratio(a: float, b: float) -> float:
    """a / b, a zero denominator giving inf (or nan for 0 / 0) rather than an exception: a layer's
    gradient or spread can underflow to 0 even in float64 (a tiny init_std)."""
    return a / b if b else math.inf if a else math.nan


def depth_row(row: dict, p: dict) -> dict:
    """A seed's row of a depth unit with the measures read from its profiles (kept raw in parts/:
    a measure defined anew needs no training again)."""
    g, gt, a = p["grad_init"], p["grad_trained"], p["act_std_init"]
    keys = ("part", "seed", "activation", "init", "depth")
    return {**{k: row[k] for k in keys}, "grad_ratio_first_last": ratio(g[0], g[-1]),
            "log10_grad_ratio_first_last": log10(ratio(g[0], g[-1])), "log10_grad_first": log10(g[0]),
            "grad_ratio_first_last_trained": ratio(gt[0], gt[-1]), "log10_grad_ratio_first_last_trained": log10(ratio(gt[0], gt[-1])),
            "act_std_first": a[0], "act_std_last": a[-1], "act_std_ratio_last_first": ratio(a[-1], a[0]),
            "log10_act_std_drift": drift(a), "train_acc": row["train_acc"], "test_acc": row["test_acc"]}  # fmt: skip


def drift(stds: list[float]) -> float:
    """How far the activation spread strays from the first hidden layer's: max over layers of |log10(std_l / std_1)|."""
    logs = np.log10(np.maximum(np.asarray(stds, dtype=float), 1e-300))
    return float(np.abs(logs - logs[0]).max())


def adding_split(r: DictConfig, length: int):
    from datamodules.embedded import sequences

    ds = sequences(n_samples=r.n_train + r.n_test, length=length, seed=0)  # one fixed draw for every seed
    x, y = torch.from_numpy(ds.x), torch.from_numpy(ds.y)
    return x[: r.n_train], y[: r.n_train], x[r.n_train :], y[r.n_train :]


def recurrence_unit(member: DictConfig, s: DictConfig, model: str, length: int) -> dict:
    from experiments.studies.ensembles import fit_members, predict
    from experiments.studies.gradient_flow_measure import AtStart, lone_members, recurrent_profile

    r = s.recurrence
    x, y, xt, yt = adding_split(r, length)
    px, py = x[: r.probe_rows], y[: r.probe_rows]
    start = AtStart(lambda net, i: recurrent_profile(net, px, py))
    rows = torch.arange(len(x)).expand(len(s.seeds), -1)
    fit = fit_members(member, r.lr, list(s.seeds), [], "regression", x, y, rows, 0, r.batch_size, 1,
                      model={"name": model, "hidden": int(r.hidden)}, kind="sequence", callbacks=(start,), max_steps=r.steps)  # fmt: skip
    trained = [recurrent_profile(net, px, py) for net in lone_members(fit)]
    test_mse = ((predict(fit, xt) - yt) ** 2).mean((1, 2))
    baseline = float(((yt - y.mean()) ** 2).mean())  # predicting the training targets' mean, on the test set
    out, profiles = [], []
    for i, seed in enumerate(s.seeds):
        out.append({"part": "recurrence", "seed": seed, "model": model, "length": length, "test_mse": float(test_mse[i]),
                    "baseline_mse": baseline})  # fmt: skip
        profiles.append({"seed": seed, "grad_init": start.found[i]["grad"], "grad_trained": trained[i]["grad"]})
    return {"rows": out, "profiles": profiles}


def recurrence_row(row: dict, p: dict) -> dict:
    """A seed's row of a recurrence unit with the measures read from its profiles."""
    from experiments.studies.gradient_flow_measure import decay

    g, gt = p["grad_init"], p["grad_trained"]
    (rho, r2), (rho_t, r2_t) = decay(g), decay(gt)
    keys = ("part", "seed", "model", "length", "test_mse", "baseline_mse")
    return {**{k: row[k] for k in keys}, "mse_ratio": ratio(row["test_mse"], row["baseline_mse"]),
            "grad_ratio_first_last": ratio(g[0], g[-1]), "log10_grad_ratio_first_last": log10(ratio(g[0], g[-1])),
            "decay_per_step": rho, "decay_r2": r2,
            "log10_grad_ratio_first_last_trained": log10(ratio(gt[0], gt[-1])), "decay_per_step_trained": rho_t,
            "decay_r2_trained": r2_t}  # fmt: skip


def run_depth(member: DictConfig, study_dir: Path, clock: Clock) -> dict:
    s, d = member.study, member.study.depth
    want = settings(s, "depth")
    data = digits_split()
    units = {}
    for activation in d.activations:
        for init in d.inits:
            for depth in d.depths:
                name = f"depth_{activation}_{init}_d{depth}"
                units[(activation, init, depth)] = kept(study_dir, name, want, lambda: depth_unit(member, s, activation, init, depth, data))
            log.info(f"depth: {activation}/{init} done ({clock()} s)")
    return units


def run_recurrence(member: DictConfig, study_dir: Path, clock: Clock) -> dict:
    s, r = member.study, member.study.recurrence
    want = settings(s, "recurrence")
    units = {}
    for length in r.lengths:
        for model in r.models:
            units[(model, length)] = kept(
                study_dir, f"recurrence_{model}_L{length}", want, lambda: recurrence_unit(member, s, model, length)
            )
            log.info(f"recurrence: {model} at length {length} done ({clock()} s)")
    return units


def summarize(rows: list[dict]) -> list[dict]:
    """One row per (activation, init, depth) and per (model, length): mean and 95% interval over seeds."""
    out = []
    for part, keys, metrics in (
        ("depth", ("activation", "init", "depth"), DEPTH_METRICS),
        ("recurrence", ("model", "length"), RECURRENCE_METRICS),
    ):
        groups: dict[tuple, list[dict]] = {}
        for r in rows:
            if r["part"] == part:
                groups.setdefault(tuple(r[k] for k in keys), []).append(r)
        for key, ms in groups.items():
            row = {"part": part, **dict(zip(keys, key)), "seeds": len(ms)}
            for m in metrics:
                with np.errstate(invalid="ignore", over="ignore"):  # an inf (a zero denominator) gives an interval of nan
                    mean, _, half = interval(r[m] for r in ms)
                row[m], row[f"{m}_ci"] = mean, half
            out.append(row)
    return out


def run(cfg: DictConfig, study_dir: Path) -> dict:
    from experiments.studies.gradient_flow_plots import draw
    from experiments.studies.gradient_flow_report import write_report

    s, clock = cfg.study, Clock()
    refuse_unread(s.name, ("study", "hydra"), *UNREAD)
    parts = check(s)
    check_trainer(cfg)
    members = {part: part_cfg(cfg, part) for part in parts}  # both parts' optimizers checked before either trains
    for part in parts:  # every saved unit made with this command's settings, before either part trains
        check_kept(study_dir, f"{part}_", settings(s, part))
    depth = run_depth(members["depth"], study_dir, clock) if "depth" in parts else {}
    recurrence = run_recurrence(members["recurrence"], study_dir, clock) if "recurrence" in parts else {}
    rows = [depth_row(r, p) for u in depth.values() for r, p in zip(u["rows"], u["profiles"])]
    rows += [recurrence_row(r, p) for u in recurrence.values() for r, p in zip(u["rows"], u["profiles"])]
    table = summarize(rows)
    finish(
        study_dir,
        clock,
        rows,
        table,
        lambda writer: draw(s, depth, recurrence, rows, table, study_dir / "figures", writer),
        lambda wall_s: write_report(study_dir, cfg, parts, rows, table, wall_s),
    )
    return {"parts": parts}
