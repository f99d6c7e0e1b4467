"""study=gradient_flow: its measurements against known answers (per-layer gradient norms against
autograd, the hand-unrolled recurrences against the layers' own forward, a linear recurrence's
closed form, the vanishing and preserved regimes of depth), a shrunken study end to end with its
resume, and its refusals."""

from __future__ import annotations

import math
import os

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from conftest import compose_config, error_lines
from experiments.studies.common import read_csv
from experiments.studies.gradient_flow import DEPTH_METRICS, RECURRENCE_METRICS
from experiments.studies.gradient_flow_measure import (
    decay,
    hidden_activations,
    mlp_profile,
    recurrent_profile,
    recurrent_step,
    state_gradients,
    unroll,
)
from lightning_modules.nets import build_net


def mlp(depth: int, activation: str, init: str, width: int = 64, inputs: int = 64, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_net("mlp", (inputs,), "tabular", 10, hidden=[width] * depth, activation=activation, init=init, init_std=0.01)


def test_per_layer_gradient_norms_and_activation_spreads_match_autograd():
    net = mlp(3, "tanh", "xavier_normal", width=7, inputs=5)
    x, y = torch.randn(32, 5), torch.randint(0, 10, (32,))
    found = mlp_profile(net, x, y)
    direct = net.double()  # the measurement runs in float64 on a copy; the net itself is untouched by it
    h = x.double()
    stds = []
    for layer in direct.layers:
        h = layer(h)
        if layer in hidden_activations(direct):
            stds.append(float(h.detach().std()))
    loss = F.cross_entropy(h, y)
    loss.backward()
    weights = [m.weight for m in direct.modules() if isinstance(m, nn.Linear)]
    assert len(found["grad"]) == 4 and len(found["act_std"]) == 3  # three hidden layers and the output layer
    assert found["grad"] == pytest.approx([float(w.grad.norm()) for w in weights], rel=1e-12)
    assert found["act_std"] == pytest.approx(stds, rel=1e-12) and found["loss"] == pytest.approx(loss.item(), rel=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_the_hand_unrolled_recurrence_is_the_layer_s_own_forward(cell):
    torch.manual_seed(0)
    net = build_net(cell, (9, 2), "sequence", 1, hidden=6).double()
    x, y = torch.rand(4, 9, 2, dtype=torch.float64), torch.rand(4, 1, dtype=torch.float64)
    step, head, zeros = recurrent_step(net)
    hs, final = unroll(step, x, zeros(4))
    out, state = net.rnn(x)
    h_n = state[0] if cell == "lstm" else state
    assert torch.allclose(torch.stack(hs, 1), out, atol=1e-12)  # every step's state, not only the last
    assert torch.allclose(hs[-1], h_n[0], atol=1e-12)
    if cell == "lstm":
        assert torch.allclose(final[1], state[1][0], atol=1e-12)  # the cell state too
    grads, loss = state_gradients(step, head, x, y, zeros(4))
    with torch.no_grad():
        assert loss == pytest.approx(F.mse_loss(net(x), y).item(), rel=1e-12) and len(grads) == 9
        last = 2 / 4 * (net(x) - y) @ net.head.weight  # the last step's gradient is the head's: 2/(B·k) (ŷ − y) W_head
    assert grads[-1] == pytest.approx(float(last.norm()), rel=1e-10)


@pytest.mark.parametrize("a", [0.5, -0.9, 1.2])
def test_a_linear_recurrence_scales_its_gradient_by_a_each_step_back(a):
    torch.manual_seed(0)
    w_in, head = torch.randn(3, 2, dtype=torch.float64), nn.Linear(3, 1).double()
    x, y = torch.randn(5, 12, 2, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    grads, _ = state_gradients(lambda xt, h: a * h + xt @ w_in.T, head, x, y, torch.zeros(5, 3, dtype=torch.float64))
    ratios = [grads[t] / grads[t + 1] for t in range(11)]  # ∂L/∂h_t = a^(L−t) ∂L/∂h_L
    assert ratios == pytest.approx([abs(a)] * 11, rel=1e-10)
    rho, r2 = decay(grads)
    assert rho == pytest.approx(abs(a), rel=1e-10) and r2 == pytest.approx(1.0)


def test_decay_reads_the_per_step_factor_and_how_exponential_a_profile_is():
    rho, r2 = decay([0.3**k for k in range(20, -1, -1)])  # the last step's is 1
    assert rho == pytest.approx(0.3) and r2 == pytest.approx(1.0)
    _, r2 = decay([1.0, 1e-3, 1.0, 1e-3, 1.0])
    assert r2 < 0.2


def test_sigmoid_with_a_small_init_vanishes_and_relu_with_kaiming_does_not():
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    for depth in (10, 20):
        vanishing = mlp_profile(mlp(depth, "sigmoid", "normal"), x, y)["grad"]
        assert vanishing[0] / vanishing[-1] < 1e-3  # measured: 1e-16 at depth 10, 1e-33 at 20
        for seed in range(3):
            kept = mlp_profile(mlp(depth, "relu", "kaiming_normal", seed=seed), x, y)
            assert 0.1 < kept["grad"][0] / kept["grad"][-1] < 10
            assert 0.1 < kept["act_std"][-1] / kept["act_std"][0] < 10  # the spread kept across layers
    small = mlp_profile(mlp(20, "relu", "normal"), x, y)["act_std"]
    assert small[-1] / small[0] < 1e-15  # N(0, 0.01²) shrinks ReLU activations by 0.01·√(64/2) = 0.057 a layer
    default = mlp_profile(mlp(20, "relu", "default"), x, y)["act_std"]
    assert default[-1] / default[0] < 0.3  # PyTorch's default by 1/√6 a layer, down to where its biases hold them


def test_recurrent_profile_reads_a_trained_members_net_and_a_fit_stops_after_its_steps(tmp_path):
    from experiments.studies.ensembles import fit_members
    from experiments.studies.gradient_flow import part_cfg

    cfg = compose_config("study=gradient_flow")
    steps = []

    class Count(pl.Callback):
        def on_train_batch_end(self, trainer, *args, **kwargs):
            steps.append(trainer.global_step)

    x, y = torch.rand(100, 6, 2), torch.rand(100, 1)
    fit = fit_members(part_cfg(cfg, "recurrence"), 1e-2, [0, 1], [], "regression", x, y, torch.arange(100).expand(2, -1), 4, 16, 1,
                      model={"name": "gru", "hidden": 4}, kind="sequence", callbacks=(Count(),), max_steps=9)  # fmt: skip
    assert steps == list(range(1, 10))  # 9 steps: the epochs (4 × 7 batches) are cut short
    profile = recurrent_profile(fit.net.member(1, fit.lone.net), x[:8], y[:8])
    assert len(profile["grad"]) == 6 and all(g > 0 for g in profile["grad"])


SHRUNK = (
    "study=gradient_flow",
    "study.seeds=[0,1]",
    "study.depth.depths=[1,3]",
    "study.depth.activations=[sigmoid,tanh]",
    "study.depth.inits=[normal,xavier_normal]",
    "study.depth.steps=15",
    "study.depth.probe_rows=64",
    "study.recurrence.lengths=[4,8]",
    "study.recurrence.steps=10",
    "study.recurrence.n_train=200",
    "study.recurrence.n_test=400",
    "study.recurrence.probe_rows=32",
)


def depth_rows(values: dict, seeds=(0, 1, 2)) -> list[dict]:
    """Rows of depth_row's keys: ``values[(activation, init, depth)]`` a function of the seed → a dict of measures."""
    keys = dict.fromkeys(DEPTH_METRICS, 0.5)
    return [{"part": "depth", "seed": s, "activation": a, "init": i, "depth": d, **keys, **f(s)}
            for (a, i, d), f in values.items() for s in seeds]  # fmt: skip


def test_zero_gradients_and_spreads_give_inf_or_nan_and_the_summary_and_report_take_them(tmp_path):
    from experiments.studies.gradient_flow import depth_row, ratio, summarize
    from experiments.studies.gradient_flow_report import write_report

    assert ratio(1.0, 0.0) == math.inf and math.isnan(ratio(0.0, 0.0)) and ratio(1.0, 4.0) == 0.25
    rows = []
    for act in ("sigmoid", "tanh"):
        for init in ("normal", "xavier_normal"):
            for depth in (1, 3):
                for seed in (0, 1):
                    torch.manual_seed(seed)  # a tiny std underflows float64: every gradient (tanh) or spread (sigmoid) 0
                    net = build_net("mlp", (64,), "tabular", 10, hidden=[8] * depth, activation=act, init=init, init_std=1e-200)
                    p = mlp_profile(net, torch.randn(16, 64), torch.randint(0, 10, (16,)))
                    row = {
                        "part": "depth",
                        "seed": seed,
                        "activation": act,
                        "init": init,
                        "depth": depth,
                        "train_acc": 0.1,
                        "test_acc": 0.1,
                    }
                    rows.append(depth_row(row, {"grad_init": p["grad"], "grad_trained": p["grad"], "act_std_init": p["act_std"]}))
    tanh = [r for r in rows if (r["activation"], r["init"]) == ("tanh", "normal")]
    assert all(math.isnan(r["grad_ratio_first_last"]) for r in tanh)  # 0 / 0
    sigmoid = [r for r in rows if (r["activation"], r["init"], r["depth"]) == ("sigmoid", "normal", 3)]
    assert all(r["grad_ratio_first_last"] == 0 and r["log10_grad_ratio_first_last"] == -300 for r in sigmoid)
    assert all(math.isnan(r["act_std_ratio_last_first"]) for r in sigmoid)  # every output 0.5: spread 0
    table = summarize(rows)
    assert len(table) == 8
    cfg = compose_config("study=gradient_flow", "study.seeds=[0,1]", "study.depth.depths=[1,3]", "study.depth.init_std=1e-200")
    write_report(tmp_path, cfg, ["depth"], rows, table, 1.0)
    report = (tmp_path / "report.md").read_text()
    assert "Sigmoid with a small (N(0, 1e-200²)) or Xavier" in report and "nan" in report


def test_vanishing_with_depth_needs_the_deepest_below_the_shallowest_paired_by_seed():
    from experiments.studies.gradient_flow_report import depth_claims

    cfg = compose_config("study=gradient_flow", "study.depth.init_std=0.05")
    flat = {("sigmoid", i, d): lambda s, d=d: {"log10_grad_ratio_first_last": -4.0 + 0.1 * s} for i in ("normal", "xavier_normal")
            for d in (2, 5, 10)}  # fmt: skip
    (claim, measured, verdict), *_ = depth_claims(depth_rows(flat), cfg.study)
    assert claim.startswith("Sigmoid with a small (N(0, 0.05²)) or Xavier")
    assert "by depth 2: -3.9, 5: -3.9, 10: -3.9" in measured and "depth 10 − depth 2 +0.0" in measured
    assert verdict.startswith("not observed: not below 10⁻² and below depth 2's")  # below 10⁻² but no trend with depth
    falling = {("sigmoid", i, d): lambda s, d=d: {"log10_grad_ratio_first_last": -d + 0.1 * s} for i in ("normal", "xavier_normal")
               for d in (2, 5, 10)}  # fmt: skip
    (_, measured, verdict), *_ = depth_claims(depth_rows(falling), cfg.study)
    assert "by depth 2: -1.9, 5: -4.9, 10: -9.9" in measured and verdict == "consistent (3 seeds)"


def rec_rows(ratios: dict, seeds=(0, 1, 2)) -> list[dict]:
    """Recurrence rows: ``ratios[(model, length)]`` the test MSE over the baseline (1/6), a little noise per seed."""
    keys = dict.fromkeys(RECURRENCE_METRICS, 0.5)
    return [{"part": "recurrence", "seed": s, "model": m, "length": n, **keys, "decay_r2": 0.99, "mse_ratio": v + 0.01 * s,
             "test_mse": (v + 0.01 * s) / 6} for (m, n), v in ratios.items() for s in seeds]  # fmt: skip


def test_the_gated_models_are_compared_at_the_longest_length_whatever_the_test_mse():
    from experiments.studies.gradient_flow_report import recurrence_claims

    cfg = compose_config("study=gradient_flow")
    # the RNN "fails" at 50 on the test split but not at 100: no length is picked from the test values
    rows = rec_rows({("rnn", 50): 0.9, ("lstm", 50): 0.01, ("rnn", 100): 0.3, ("lstm", 100): 0.01})
    *_, (claim, measured, verdict) = recurrence_claims(rows, cfg.study)
    assert claim.startswith("LSTM and GRU solve") and measured.startswith("length 100 (the longest)")
    assert "rnn 0.310 ± " in measured and verdict == "undecided: the RNN does not fail at the longest length, 100 (3 seeds)"
    rows = rec_rows({("rnn", 50): 0.3, ("lstm", 50): 0.2, ("rnn", 100): 0.9, ("lstm", 100): 0.01})
    *_, (_, measured, verdict) = recurrence_claims(rows, cfg.study)
    assert measured.startswith("length 100 (the longest)") and verdict == "consistent (3 seeds)"


def test_shrunken_study_writes_tables_verdicts_figures_and_resumes_without_training(cli, tmp_path, monkeypatch):
    code, out, err = cli(*SHRUNK)
    assert code == 0, err[-3000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    rows = read_csv(study / "results.csv")
    assert len(rows) == 2 * (2 * 2 * 2 + 3 * 2)  # seeds × (activation × init × depth + model × length)
    summary = read_csv(study / "summary.csv")
    depth = [r for r in summary if r["part"] == "depth"]
    rec = [r for r in summary if r["part"] == "recurrence"]
    assert len(depth) == 8 and len(rec) == 6
    assert {"activation", "init", "depth", "grad_ratio_first_last", "grad_ratio_first_last_ci", "test_acc", "test_acc_ci"} <= set(depth[0])
    assert {"model", "length", "test_mse", "test_mse_ci", "baseline_mse", "baseline_mse_ci"} <= set(rec[0])
    assert all(0 <= r["test_acc"] <= 1 and r["seeds"] == 2 for r in depth)
    assert all(abs(r["baseline_mse"] - 1 / 6) < 0.03 and r["test_mse"] > 0 for r in rec)  # the variance of a sum of two U(0, 1)
    sig = next(r for r in depth if (r["activation"], r["init"], r["depth"]) == ("sigmoid", "normal", 3))
    assert sig["log10_grad_ratio_first_last"] < -3  # two sigmoid layers of N(0, 0.01²) weights already
    report = (study / "report.md").read_text()
    assert "| claim | measured here | verdict |" in report
    claims = [line for line in report.splitlines() if line.startswith("| ") and line.rstrip().endswith("seeds) |")]
    assert len(claims) == 5 and all(
        line.count(" | ") == 2 for line in claims
    )  # relu with Kaiming not run: no claim 2  # three cells: no stray pipe inside one
    assert "Sigmoid with a small (N(0, 0.01²)) or Xavier initialization" in report and "(2 seeds) |" in report
    figures = ("depth_gradients", "depth_activations", "depth_accuracy", "recurrence_gradients", "recurrence_mse")
    for stem in figures:
        assert (study / "figures" / f"{stem}.png").stat().st_size > 10_000
    parts = {p.name: p.stat().st_mtime_ns for p in (study / "parts").iterdir()}
    assert len(parts) == 14

    def no_training(*args, **kwargs):
        raise AssertionError("a resumed study trained again")

    monkeypatch.setattr("experiments.studies.ensembles.fit_members", no_training)
    os.remove(study / "report.md")
    code, out, err = cli(*SHRUNK, "study.resume=true")
    assert code == 0, err[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (study / "parts").iterdir()} == parts and (study / "report.md").exists()
    assert len(list(study.parent.iterdir())) == 1
    code, _, err = cli(*SHRUNK, "study.resume=true", "study.depth.steps=16")
    assert code == 2 and error_lines(err)[0].startswith("error: study.resume: parts/depth_sigmoid_normal_d1.json was made with other")


def test_a_resume_with_other_settings_is_refused_before_it_trains_a_new_unit(cli, tmp_path):
    tiny = ("study=gradient_flow", "study.only=[recurrence]", "study.seeds=[0,1]", "study.recurrence.models=[rnn]",
            "study.recurrence.steps=3", "study.recurrence.n_train=20", "study.recurrence.n_test=20",
            "study.recurrence.probe_rows=8")  # fmt: skip
    code, out, err = cli(*tiny, "study.recurrence.lengths=[4]")
    assert code == 0, err[-3000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    assert sorted(p.name for p in (study / "parts").iterdir()) == ["recurrence_rnn_L4.json"]
    # length 3 runs first and is new: it must not be trained and saved beside a part made with 3 steps
    code, _, err = cli(*tiny, "study.recurrence.lengths=[3,4]", "study.recurrence.steps=4", "study.resume=true")
    assert code == 2 and error_lines(err)[0].startswith("error: study.resume: parts/recurrence_rnn_L4.json was made with other")
    assert sorted(p.name for p in (study / "parts").iterdir()) == ["recurrence_rnn_L4.json"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("study.depth.depths=[0,2]",), "error: study.depth.depths=[0, 2]: a non-empty list of integers >= 1 (hidden layers)"),
        (("study.recurrence.lengths=[1,10]",), "error: study.recurrence.lengths=[1, 10]: a non-empty list of integers >= 2"),
        (
            ("study.depth.activations=[tanh,swish]",),
            "error: study.depth.activations=['tanh', 'swish']: unknown or empty ['swish']; valid: elu, gelu",
        ),
        (("study.depth.inits=[he]",), "error: study.depth.inits=['he']: unknown or empty ['he']; valid: default, xavier_uniform"),
        (("study.recurrence.models=[rnn,transformer]",), "error: study.recurrence.models=['rnn', 'transformer']: unknown or empty"),
        (("study.depth.steps=0",), "error: study.depth.steps=0: must be an integer >= 1"),
        (("study.recurrence.steps=-5",), "error: study.recurrence.steps=-5: must be an integer >= 1"),
        (("study.depth.lr=0",), "error: study.depth.lr=0: must be a number > 0"),
        (("study.recurrence.lr=-1e-3",), "error: study.recurrence.lr=-0.001: must be a number > 0"),
        (("study.seeds=[0]",), "error: study.seeds=[0]: the 95% intervals over seeds need at least 2 seeds"),
        (("study.seeds=[0,-1]",), "error: study.seeds=[0, -1]: must be a non-empty list of integers >= 0"),
        (("study.seeds=[1,1]",), "error: study.seeds=[1, 1]: a seed is repeated; each must be distinct"),
        (("study.only=[depth,width]",), "error: study.only=['depth', 'width']: unknown or empty; parts: depth, recurrence"),
        (("study.only=depth",), "error: study.only=depth: a list of parts, e.g. study.only=[depth]; parts: depth, recurrence"),
        (("study.depth.probe_rows=2000",), "error: study.depth.probe_rows=2000: at most the 1438 training images"),
        (("study.depth.optimizer=lbfgs",), "error: study.depth.optimizer='lbfgs': unknown; valid: adadelta, adagrad, adam"),
        (("study.depth.optimizer=adamp",), "error: study.depth.optimizer=adamp: study=gradient_flow with optimizer=adamp: one optimizer"),
        (("study.recurrence.optimizer=adamp",), "error: study.recurrence.optimizer=adamp: study=gradient_flow with optimizer=adamp"),
        (("optimizer=adam",), "error: optimizer=adam: study=gradient_flow sets each part's optimizer and learning rate; use study.depth"),
        (("optimizer.lr=0.1",), "error: optimizer.lr=0.1: study=gradient_flow sets each part's optimizer and learning rate"),
        (("regularization.grad_clip=1",), "error: regularization.grad_clip=1: study=gradient_flow sets each part's clipping"),
        (("model=cnn",), "error: model=cnn: not used by study=gradient_flow, which builds its own networks and data"),
        (("data=mnist1d",), "error: data=mnist1d: not used by study=gradient_flow"),
        (("seed=3",), "error: seed=3: not used by study=gradient_flow"),
        (("study.depth.init_std=0",), "error: study.depth.init_std=0: must be a number > 0"),
        (("study.recurrence.probe_rows=9999",), "error: study.recurrence.probe_rows=9999: at most study.recurrence.n_train=5000"),
        (("study.depth.depths=10",), "error: study.depth.depths=10: a list is expected, e.g. study.depth.depths=[10]"),
        (("study.recurrence.lengths=50",), "error: study.recurrence.lengths=50: a list is expected, e.g. study.recurrence.lengths=[50]"),
        (("study.depth.activations=relu",), "error: study.depth.activations=relu: a list is expected, e.g. study.depth.activations=[relu]"),
        (("study.depth.inits=normal",), "error: study.depth.inits=normal: a list is expected"),
        (("study.recurrence.models=rnn",), "error: study.recurrence.models=rnn: a list is expected"),
        (("study.seeds=3",), "error: study.seeds=3: must be a non-empty list of integers >= 0"),
        (("study.depth.depths=[]",), "error: study.depth.depths=[]: a non-empty list is expected"),
        (
            ("study.depth.inits=[normal,zeros]",),
            "error: study.depth.inits=['normal', 'zeros']: 'zeros' gives every unit of a layer the same value and gradient, so no flow "
            "to measure; valid: default, xavier_uniform",
        ),
        (
            ("trainer=ddp_cpu",),
            "error: trainer.devices=2 trainer.strategy=ddp: study=gradient_flow trains its members in one process; use trainer=cpu",
        ),
        (("study.one_fit=false",), "error: study.one_fit=false: study=gradient_flow always trains its members together as seeded fits"),
    ],
)
def test_gradient_flow_refuses_bad_input_in_one_line(cli, tmp_path, args, message):
    code, _, err = cli("study=gradient_flow", *args, cwd=tmp_path)
    assert code == 2 and err.strip().startswith(message), err
    assert len(err.strip().splitlines()) == 1 and len(error_lines(err)) == 1
    assert not list((tmp_path / "outputs" / "studies" / "gradient_flow").glob("*/parts/*.json"))  # refused before anything trained


def test_the_recurrent_unroll_refuses_a_net_it_would_misread():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="readout 'last'"):
        recurrent_step(build_net("gru", (9, 2), "sequence", 1, hidden=4, readout="mean"))
    with pytest.raises(ValueError, match="norm must be the identity"):
        recurrent_step(build_net("gru", (9, 2), "sequence", 1, hidden=4, batch_norm=True))


@pytest.mark.slow  # ≈ 30 s on 2 cores: long enough to train
def test_the_rnn_fails_where_the_lstm_solves_the_adding_problem(cli, tmp_path):
    code, out, err = cli(
        "study=gradient_flow",
        "study.only=[recurrence]",
        "study.seeds=[0,1]",
        "study.recurrence.models=[rnn,lstm]",
        "study.recurrence.lengths=[50]",
        "study.recurrence.steps=1000",
    )
    assert code == 0, err[-3000:]
    study = tmp_path / out.strip().splitlines()[-1].removeprefix("study_dir: ")
    summary = {r["model"]: r for r in read_csv(study / "summary.csv")}
    assert summary["rnn"]["mse_ratio"] > 0.5 and summary["lstm"]["mse_ratio"] < 0.1
    assert summary["rnn"]["decay_per_step"] < 0.9 and summary["rnn"]["decay_r2"] > 0.9
    report = (study / "report.md").read_text()
    assert "| The plain RNN fails at long lengths" in report and "LSTM and GRU solve lengths where the RNN does not" in report
    assert not math.isnan(summary["lstm"]["log10_grad_ratio_first_last_trained"])
