"""Benchmark of the network families on MNIST-1D (not a test): training throughput per family, and
the CNN's time to 94% test accuracy through the template against a hand-written loop.

    python benchmarks/families.py            # writes benchmarks/results/families.md

Throughput: Adam steps on batches of 100 signals (1, 40), forward + backward + update, the median
of ``--repeats`` timings of 20 steps each. Time to accuracy: the published protocol (all 4,000
training signals, Adam 1e-2, batch 100), the test accuracy taken after every epoch (evaluation
time not counted), in the template (Lightning, the device loader) and in a plain loop doing the
same; then the whole `python experiments/run.py ...` process for as many epochs as it needed.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_markdown  # noqa: E402
from lightning_modules.nets import MODELS, build_net  # noqa: E402
from lightning_modules.nets.common import count_parameters  # noqa: E402

# The MNIST-1D table's members: the shipped configs, and the published recipes where they differ.
VARIANTS = {
    "logistic (mlp, hidden=[])": ("mlp", {"hidden": []}),
    "mlp (hidden=[100, 100])": ("mlp", {"hidden": [100, 100]}),
    "gru (reference: 6 units, bidirectional, flatten)": ("gru", {"hidden": 6, "bidirectional": True, "readout": "flatten"}),
}
TARGET = 0.94


def shipped(name: str) -> dict:
    from omegaconf import OmegaConf

    d = OmegaConf.to_container(OmegaConf.load(ROOT / "experiments" / "configs" / "model" / f"{name}.yaml"))
    d.pop("name")
    return d


def throughput(name: str, hparams: dict, repeats: int, steps: int = 20) -> dict:
    torch.manual_seed(0)
    net = build_net(name, (1, 40), "signal", 10, **hparams)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(100, 1, 40), torch.randint(0, 10, (100,))

    def run():
        for _ in range(steps):
            loss = torch.nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

    run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    per_step = statistics.median(times) / steps
    return {"params": count_parameters(net), "step_ms": per_step * 1e3, "samples_s": 100 / per_step}


def mnist1d_full():
    from datamodules.tensor_datamodule import TensorDataModule

    dm = TensorDataModule("mnist1d", batch_size=100, val_fraction=0.0, test_fraction=0.0)
    dm.setup()
    return dm


def hand_written_time_to_target(dm, epochs: int, seed: int) -> tuple[float | None, float, int | None]:
    """The reference CNN in a plain loop: (seconds to TARGET, final accuracy, epochs to TARGET)."""
    torch.manual_seed(seed)
    net = build_net("cnn", (1, 40), "signal", 10, **shipped("cnn"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    (x, y), (xt, yt) = dm.tensors("train"), dm.tensors("test")
    g = torch.Generator().manual_seed(seed)
    spent, reached, reached_epoch, acc = 0.0, None, None, 0.0
    for epoch in range(epochs):
        t0 = time.perf_counter()
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(100):
            loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        spent += time.perf_counter() - t0
        net.eval()
        with torch.no_grad():
            acc = (net(xt).argmax(1) == yt).float().mean().item()
        if reached is None and acc >= TARGET:
            reached, reached_epoch = spent, epoch + 1
    return reached, acc, reached_epoch


def template_time_to_target(epochs: int, seed: int) -> tuple[float | None, float, int | None]:
    """The same through the template's modules and Trainer, test accuracy after each epoch."""
    import pytorch_lightning as pl
    from hydra import compose, initialize_config_dir

    from experiments.build import build_datamodule, build_module

    with initialize_config_dir(config_dir=str(ROOT / "experiments" / "configs"), version_base="1.3"):
        cfg = compose(
            config_name="train", overrides=["model=cnn", "data=mnist1d", "optimizer.lr=1e-2", "data.val_fraction=0", f"seed={seed}"]
        )
    pl.seed_everything(seed, verbose=False)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)

    class TestEveryEpoch(pl.Callback):
        def __init__(self):
            self.spent, self.t0, self.reached, self.reached_epoch, self.acc = 0.0, 0.0, None, None, 0.0

        def on_train_epoch_start(self, trainer, pl_module):
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            self.spent += time.perf_counter() - self.t0
            xt, yt = dm.tensors("test")
            pl_module.eval()
            with torch.no_grad():
                self.acc = (pl_module.net(xt).argmax(1) == yt).float().mean().item()
            pl_module.train()
            if self.reached is None and self.acc >= TARGET:
                self.reached, self.reached_epoch = self.spent, trainer.current_epoch + 1

    probe = TestEveryEpoch()
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[probe],
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    return probe.reached, probe.acc, probe.reached_epoch


def whole_process(epochs: int, seed: int) -> tuple[float, str]:
    cmd = [
        sys.executable,
        str(ROOT / "experiments" / "run.py"),
        "model=cnn",
        "data=mnist1d",
        "optimizer.lr=1e-2",
        "data.val_fraction=0",
        "test_ckpt=last",
        f"trainer.max_epochs={epochs}",
        f"seed={seed}",
        "callbacks.progress=none",
        "logger=none",
        "hydra.run.dir=/tmp/dlf_bench_run",
    ]
    shutil.rmtree("/tmp/dlf_bench_run", ignore_errors=True)  # a run directory is never overwritten
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    wall = time.perf_counter() - t0
    acc = next(line for line in out.splitlines() if "test/acc" in line).split("│")[2].strip()
    return wall, acc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=40, help="budget of the time-to-accuracy runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "families.md")
    args = parser.parse_args()

    classifiers = [e.name for e in MODELS if not e.info.get("generative")]
    rows = [(name, *throughput(name, shipped(name), args.repeats).values()) for name in classifiers]
    rows += [(label, *throughput(name, {**shipped(name), **hp}, args.repeats).values()) for label, (name, hp) in VARIANTS.items()]
    rows.sort(key=lambda r: -r[3])

    dm = mnist1d_full()
    ttt = []
    for seed in args.seeds:
        hand = hand_written_time_to_target(dm, args.epochs, seed)
        ours = template_time_to_target(args.epochs, seed)
        ttt.append((seed, hand, ours))
    need = max((o[2] or args.epochs) for _, _, o in ttt)
    wall, acc = whole_process(need, args.seeds[0])

    fmt = lambda s: "not reached" if s is None else f"{s:.2f}"  # noqa: E731
    lines = [
        "# Network families on MNIST-1D",
        "",
        f"`python benchmarks/families.py` on {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, CPU.",
        "",
        f"## Training throughput (Adam, batch 100, (1, 40) signals; median of {args.repeats} × 20 steps)",
        "",
        "| model | parameters | step (ms) | samples/s |",
        "|---|---|---|---|",
        *[f"| {name} | {p:,} | {ms:.2f} | {sps:,.0f} |" for name, p, ms, sps in rows],
        "",
        f"## CNN to {TARGET:.0%} test accuracy (reference CNN, Adam 1e-2, batch 100, all 4,000 training signals)",
        "",
        "Seconds of training until the test accuracy, taken after each epoch (not counted), first reaches the target.",
        "",
        "| seed | hand-written loop: s (epochs) | template: s (epochs) | ratio | final test acc (loop / template) |",
        "|---|---|---|---|---|",
    ]
    for seed, hand, ours in ttt:
        ratio = f"{ours[0] / hand[0]:.2f}" if hand[0] and ours[0] else "–"
        lines.append(
            f"| {seed} | {fmt(hand[0])} ({hand[2] or '–'}) | {fmt(ours[0])} ({ours[2] or '–'}) | {ratio} | {hand[1]:.4f} / {ours[1]:.4f} |"
        )
    lines += [
        "",
        f"Whole process, `python experiments/run.py model=cnn data=mnist1d optimizer.lr=1e-2 data.val_fraction=0 test_ckpt=last "
        f"trainer.max_epochs={need} seed={args.seeds[0]}`: {wall:.1f} s, test accuracy {acc}.",
        "",
    ]
    write_markdown(args.out, lines)


if __name__ == "__main__":
    main()
