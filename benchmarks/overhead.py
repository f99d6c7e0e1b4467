"""Framework overhead (not a test): the template's training against a hand-written PyTorch loop
doing identical work, and the start-up cost of the command line.

    python benchmarks/overhead.py            # writes benchmarks/results/overhead.md

Identical work: the same network with the same initial weights (one ``build_module``, its weights
copied), the same data in the same order (the DataModule's device loader, epoch by epoch), the same
optimizer (the module's own factory) and loss, the same number of steps; neither validates, logs to
disk or checkpoints. The template is ``pl.Trainer.fit`` on the template's LightningModule (its
training step with its per-epoch train loss and accuracy); the loop is ``for x, y in loader:
loss = loss_fn(net(x), y); zero_grad; backward; step``. Per epoch time is the median over epochs
2…E of each repetition (epoch 1 warms up); the ratio is taken within each repetition, the
repetitions interleaved, and the median reported. The final training loss of both (the trained
network on the whole training split, eval mode) must agree to 5 decimals: the proof that the
computation was the same.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import write_markdown  # noqa: E402

CASES = {  # name → (overrides of the default experiment, epochs per repetition)
    "default MLP on digits (batch 64)": ([], 12),
    "reference CNN on mnist1d (batch 100)": (["model=cnn", "data=mnist1d", "data.batch_size=100", "data.val_fraction=0"], 12),
    "ResNet on mnist1d (batch 100)": (["model=resnet", "data=mnist1d", "data.batch_size=100", "data.val_fraction=0"], 4),
}


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "experiments" / "configs"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def prepare(overrides: list[str]):
    import pytorch_lightning as pl

    from experiments.build import build_datamodule, build_module

    cfg = compose(overrides)
    pl.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    module = build_module(cfg, dm)
    dm.setup("fit")
    return dm, module


class EpochClock:
    def __init__(self):
        self.times: list[float] = []

    def start(self):
        self.t0 = time.perf_counter()

    def stop(self):
        self.times.append(time.perf_counter() - self.t0)


def template_fit(overrides: list[str], epochs: int) -> tuple[list[float], torch.nn.Module, object]:
    import pytorch_lightning as pl

    dm, module = prepare(overrides)
    start = copy.deepcopy(module.net.state_dict())
    clock = EpochClock()

    class Timer(pl.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            clock.start()

        def on_train_epoch_end(self, trainer, pl_module):
            clock.stop()

    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        callbacks=[Timer()],
    )
    trainer.fit(module, datamodule=dm)
    return clock.times, module.net, (dm, start, module)


def loop_fit(dm, start: dict, module, epochs: int) -> tuple[list[float], torch.nn.Module]:
    net = copy.deepcopy(module.net)
    net.load_state_dict(start)
    net.train()
    optimizer = module.optimizer_factory(net)
    loss_fn = module.loss_fn
    loader = dm.train_dataloader()
    clock = EpochClock()
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        clock.start()
        for x, y in loader:
            loss = loss_fn(net(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        clock.stop()
    return clock.times, net


@torch.no_grad()
def training_loss(net: torch.nn.Module, dm, loss_fn) -> float:
    net.eval()
    x, y = dm.tensors("train")
    return float(loss_fn(net(x), y))


def compare(overrides: list[str], epochs: int, repeats: int) -> dict:
    ratios, template_epochs, loop_epochs = [], [], []
    losses = None
    for _ in range(repeats):
        t_times, t_net, (dm, start, module) = template_fit(overrides, epochs)
        l_times, l_net = loop_fit(dm, start, module, epochs)
        t, loop = statistics.median(t_times[1:]), statistics.median(l_times[1:])
        ratios.append(t / loop)
        template_epochs.append(t)
        loop_epochs.append(loop)
        losses = (training_loss(t_net, dm, module.loss_fn), training_loss(l_net, dm, module.loss_fn))
    steps = len(dm.train_dataloader())
    return {
        "template_ms": statistics.median(template_epochs) * 1e3,
        "loop_ms": statistics.median(loop_epochs) * 1e3,
        "ratio": statistics.median(ratios),
        "ratios": ratios,
        "losses": losses,
        "steps": steps,
    }


def lightning_floor(steps: int = 2000) -> dict[str, float]:
    """µs per step of an empty step (one scalar parameter, a loss of one multiply) in ``Trainer.fit``,
    with automatic and with manual optimization, and in a plain loop: what any LightningModule pays."""
    import pytorch_lightning as pl

    class Empty(pl.LightningModule):
        def __init__(self, manual: bool):
            super().__init__()
            self.w, self.automatic_optimization = torch.nn.Parameter(torch.zeros(1)), not manual

        def training_step(self, batch, batch_idx):
            loss = (self.w * batch[0].sum()).sum()
            if self.automatic_optimization:
                return loss
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class Batches:  # an iterable of `steps` identical batches (a plain list would be read as many loaders)
        def __len__(self):
            return steps

        def __iter__(self):
            return iter([(torch.ones(4),)] * steps)

    batches = Batches()
    out = {}
    for manual in (False, True):
        trainer = pl.Trainer(
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            limit_val_batches=0,
        )
        t0 = time.perf_counter()
        trainer.fit(Empty(manual), batches)
        out["manual" if manual else "automatic"] = (time.perf_counter() - t0) / steps * 1e6
    w, x = torch.nn.Parameter(torch.zeros(1)), torch.ones(4)
    opt = torch.optim.SGD([w], lr=0.0)
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = (w * x.sum()).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out["plain loop"] = (time.perf_counter() - t0) / steps * 1e6
    return out


def timed(cmd: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp", check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def startup(repeats: int) -> dict:
    python, run = sys.executable, str(ROOT / "experiments" / "run.py")
    out = "hydra.run.dir=/tmp/dlf_bench_overhead"
    return {
        "python -c pass": timed([python, "-c", "pass"], repeats),
        "import torch": timed([python, "-c", "import torch"], repeats),
        "import hydra, compose the config": timed(
            [
                python,
                "-c",
                "from hydra import compose, initialize_config_dir\n"
                f"with initialize_config_dir(config_dir={str(ROOT / 'experiments' / 'configs')!r}, version_base='1.3'):\n"
                "    compose(config_name='train')",
            ],
            repeats,
        ),
        "import pytorch_lightning": timed([python, "-c", "import pytorch_lightning"], repeats),
        "import everything a run imports": timed(
            [
                python,
                "-c",
                f"import sys; sys.path.insert(0, {str(ROOT)!r}); import experiments.train, experiments.build, pytorch_lightning",
            ],
            repeats,
        ),
        "run.py --help": timed([python, run, "--help"], repeats),
        "run.py (the default run, figures on)": timed(["bash", "-c", f"rm -rf /tmp/dlf_bench_overhead; {python} {run} {out}"], repeats),
        "run.py callbacks.figures=false": timed(
            ["bash", "-c", f"rm -rf /tmp/dlf_bench_overhead; {python} {run} {out} callbacks.figures=false"], repeats
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=None, help="epochs per repetition (default: each case's own)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "overhead.md")
    args = parser.parse_args()
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(name).setLevel(logging.ERROR)  # no "GPU available" banner per repetition
    results = {name: compare(overrides, args.epochs or epochs, args.repeats) for name, (overrides, epochs) in CASES.items()}
    floors = [lightning_floor() for _ in range(args.repeats)]
    floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
    start = startup(args.repeats)
    lines = [
        "# Framework overhead",
        "",
        f"`python benchmarks/overhead.py` on {platform.machine()}, {torch.get_num_threads()} torch threads, torch "
        f"{torch.__version__}, CPU; "
        f"{args.repeats} repetitions, interleaved (see the module docstring for the protocol).",
        "",
        "| case | steps/epoch | template ms/epoch | hand-written ms/epoch | difference ms/epoch | ratio (median) [all] | target | "
        "final training loss: template / loop |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        same = "equal to 5 decimals" if round(r["losses"][0], 5) == round(r["losses"][1], 5) else "DIFFERENT"
        lines.append(
            f"| {name} | {r['steps']} | {r['template_ms']:.2f} | {r['loop_ms']:.2f} | {r['template_ms'] - r['loop_ms']:.1f} | "
            f"{r['ratio']:.3f} "
            f"[{', '.join(f'{x:.2f}' for x in r['ratios'])}] | ≤ 1.03 | {r['losses'][0]:.6f} / {r['losses'][1]:.6f} ({same}) |"
        )
    lines += [
        "",
        f"## The floor: an empty training step (µs per step, median of {args.repeats} × 2,000 steps)",
        "",
        "What Lightning's loop costs any LightningModule: the step's own work here is one multiply.",
        "",
        "| Trainer.fit, automatic optimization | Trainer.fit, manual optimization | plain loop |",
        "|---|---|---|",
        f"| {floor['automatic']:.0f} | {floor['manual']:.0f} | {floor['plain loop']:.0f} |",
    ]
    lines += [
        "",
        f"## Start-up (median of {args.repeats} whole processes, seconds)",
        "",
        "| command | s |",
        "|---|---|",
        *[f"| {k} | {v:.2f} |" for k, v in start.items()],
        "",
    ]
    write_markdown(args.out, lines)


if __name__ == "__main__":
    main()
