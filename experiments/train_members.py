"""The end of a ``seeds=[...]`` run (``experiments/train.py`` builds and fits it): each member tested
with its own tested checkpoint (best or last, as ``test_ckpt`` says) in one pass, each member's
``members/seed<k>/metrics.json`` and ``.hydra/config.yaml`` written as its lone run's (so
``load_run``, ``eval=`` and the studies' scoring take a member as a run), then the run's
``metrics.json``: each final metric's mean over the members with the half-width of its 95%
t-interval (``<metric>_ci``), and every member's record under ``members``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from callbacks.members import MemberRecords, member_dir
from core.files import write_json_atomic
from experiments.build import member_config
from experiments.train import run_record, test, write_metrics
from lightning_modules.members import MembersModule, member_tag
from lightning_modules.nets.common import count_parameters
from numerics.intervals import interval


def _records_of(trainer) -> MemberRecords:
    return next(c for c in trainer.callbacks if isinstance(c, MemberRecords))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("net."): v for k, v in state.items()}


def _probe_members(cfg: DictConfig, module: MembersModule, dm, records: MemberRecords) -> list[dict[str, float]]:
    """``callbacks.sharpness`` and ``callbacks.hessian``: each member's final weights (its last
    checkpoint: a member stopped early is probed where it stopped) probed as a lone run's are, one
    member after another (the numbers only: no per-member figure)."""
    from experiments.probes import hessian_probe, sharpness_probe

    probes = [make(cfg) for key, make in (("sharpness", sharpness_probe), ("hessian", hessian_probe)) if cfg.callbacks[key].enabled]
    x, y = dm.tensors("train")
    module.net.load_members([_weights(member_dir(records.folder, s) / "checkpoints" / "last.ckpt") for s in module.seeds])
    lone = module.lone.net
    found = []
    for i in range(module.k):
        net = module.net.member(i, like=lone).to(x.device)
        found.append({k: v for probe in probes for k, v in probe.measure(net, module.loss_fn, x, y).items()})
    return found


def finish(cfg: DictConfig, run_dir: Path, trainer, module: MembersModule, dm, start: float, report: bool, trial=None) -> dict[str, Any]:
    records = _records_of(trainer)
    tested = records.tested_paths(cfg.test_ckpt)
    has_test = cfg.run_test and dm.split_sizes()["test"] > 0
    if cfg.run_test and not has_test:
        print(f"not tested: data.test_fraction={cfg.data.test_fraction} and dataset {dm.name!r} has no test split of its own", flush=True)
    elif has_test and tested is None:  # as a lone run: said, not replaced by another checkpoint
        has_test = False
        print("not tested: a member has no best checkpoint (it never validated); metrics.json holds no test metrics", flush=True)
    probed = cfg.callbacks.sharpness.enabled or cfg.callbacks.hessian.enabled
    probes = _probe_members(cfg, module, dm, records) if probed and trainer.is_global_zero else None
    if has_test:
        module.net.load_members([_weights(p) for p in tested])  # every member's tested weights, tested in one pass
        test(trainer, module, dm, None, run_dir)
    if not trainer.is_global_zero:
        return {}
    values = {k: v for k, v in module.epoch_values.items() if k.startswith("test/")} if has_test else {}
    if torch.isfinite(module.best_val).all():  # kept in the run's checkpoint: also after a resume that only tests
        values[f"val/{module.headline[0]}_best"] = module.best_val
    base = run_record(cfg, trainer, start)
    params = count_parameters(module.lone.net)
    members = []
    for i, seed in enumerate(module.seeds):
        here = member_dir(records.folder, seed)
        stopped = records.stopped_epoch[i]
        record = {
            **{k: float(v[i]) for k, v in values.items()},
            **(probes[i] if probes else {}),
            **base,
            "seed": seed,
            "wall_s": round(base["wall_s"] / module.k, 3),  # its share of the fit, comparable with a lone run's
            "fit_wall_s": base["wall_s"],
            "fit_members": module.k,
            "epochs": stopped if stopped is not None else base["epochs"],
            "steps": records.stopped_step[i] if stopped is not None else base["steps"],
            "params": params,
            "test_checkpoint": str(tested[i].relative_to(here)) if has_test else None,
            "run": os.path.relpath(here, run_dir),
        }
        (here / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(member_config(cfg, seed), here / ".hydra" / "config.yaml", resolve=True)
        write_json_atomic(here / "metrics.json", record)
        members.append(record)
    final: dict[str, float] = {}
    for name in sorted(values) + sorted(probes[0] if probes else []):
        mean, _, half = interval(r[name] for r in members)
        final[name], final[f"{name}_ci"] = mean, half
    record = {**final, **base, "seeds": module.seeds, "params": params, "test_checkpoint": None, "members": members}
    if trial is not None and trial.pruned_at is not None:
        record["pruned_at_epoch"] = trial.pruned_at
    from callbacks.loggers import tensorboard_of
    from experiments.loggers import publish_figures
    from experiments.results import log_hparams, print_table

    board = tensorboard_of(trainer)
    if board is not None:
        log_hparams(board, OmegaConf.to_container(cfg, resolve=True), {k: v for k, v in final.items() if not k.endswith("_ci")})
    write_metrics(run_dir, record)
    publish_figures(trainer.loggers, run_dir / "figures")
    if report:
        rows = {name: f"{final[name]:.4f} ± {final[f'{name}_ci']:.4f}" for name in sorted(values)}
        rows.update({member_tag(name, r["seed"]): r[name] for name in sorted(values) if name.startswith("test/") for r in members})
        print_table(f"{cfg.name} ({len(members)} seeds: mean ± 95% interval)", {**rows, "epochs": base["epochs"], "wall_s": base["wall_s"]})
    return record
