"""The generative study (``study=generative``): VAE, GAN, DDPM and PixelCNN trained on digits over
seeds, compared by likelihood where they have one (bits per dimension on the test split: the VAE's
ELBO bound, PixelCNN's exact value) and for all four by what a digits classifier trained by the
template makes of ``study.samples`` seeded samples:

* class entropy (bits): of the classifier's labels over the samples; log2(10) = 3.32 when every
  class is equally common, lower when the model drops classes (mode collapse);
* confidence: the classifier's mean top probability (recognizable digits score high);
* Fréchet distance between the samples and the test split in the classifier's last hidden layer
  (the FID recipe with this classifier in place of Inception), next to the distance between the
  training and test splits of the real data, the floor a perfect model would reach.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from core.errors import ConfigError
from core.files import write_text_atomic
from experiments.studies.common import Clock, cached, finish, log, member_overrides
from experiments.studies.launch import Unit
from experiments.studies.members import check_seeds, chosen, load_member, run_members, sorted_bars
from numerics.intervals import direction, interval, paired

LIKELIHOOD = ("vae", "pixelcnn")  # the families with a test bits/dim (a bound for the VAE)


def check(s: DictConfig) -> None:
    check_seeds(s.seeds)
    chosen(s)
    for name, m in s.members.items():
        if not isinstance(m.get("epochs"), int) or m.epochs < 1:
            raise ConfigError(f"study.members.{name}.epochs={m.get('epochs')}: must be an integer >= 1")
    if not isinstance(s.samples, int) or s.samples < 20:
        raise ConfigError(f"study.samples={s.samples}: must be an integer >= 20")
    if s.epochs is not None and (not isinstance(s.epochs, int) or s.epochs < 1):
        raise ConfigError(f"study.epochs={s.epochs}: must be an integer >= 1 or null (each member's own budget)")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^½) between Gaussians fitted to the rows of a and b."""
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    ridge = 1e-6 * np.eye(a.shape[1])  # units that never fire make the covariances singular
    cov_a, cov_b = np.cov(a, rowvar=False) + ridge, np.cov(b, rowvar=False) + ridge
    root = linalg.sqrtm(cov_a @ cov_b)
    root = root.real if np.iscomplexobj(root) else root
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


class Judge:
    """The template-trained classifier: its labels, confidences and features for raw inputs."""

    def __init__(self, classifier_dir: Path):
        _, self.module, self.dm = load_member(classifier_dir)
        self.features = self.module.net.layers[:-1]  # MLP: everything before the last Linear
        self.test_features = self.embed(torch.from_numpy(self.dm.arrays("test")[0]))
        self.train_features = self.embed(torch.from_numpy(self.dm.arrays("train")[0]))

    @torch.no_grad()
    def embed(self, x_normalized: torch.Tensor) -> np.ndarray:
        return self.features(x_normalized.float()).numpy()

    @torch.no_grad()
    def _scores(self, x_normalized: torch.Tensor, features: np.ndarray) -> dict[str, float]:
        probs = self.module(x_normalized).softmax(1)
        shares = np.bincount(probs.argmax(1).numpy(), minlength=probs.shape[1]) / len(probs)
        shares = shares[shares > 0]
        return {
            "class_entropy": float(-(shares * np.log2(shares)).sum()),
            "confidence": float(probs.max(1).values.mean()),
            "frechet": frechet_distance(features, self.test_features),
        }

    def score(self, raw: torch.Tensor) -> dict[str, float]:
        x = torch.from_numpy(self.dm.normalize_like_training(raw.numpy()))
        return self._scores(x, self.embed(x))

    def reference(self) -> dict[str, float]:
        """The same scores for real digits: the training split against the test split."""
        return self._scores(torch.from_numpy(self.dm.arrays("train")[0]), self.train_features)


def summarize(rows: list[dict], names: list[str], real: dict) -> list[dict]:
    table = []
    for name in names:
        mine = [r for r in rows if r["member"] == name]
        entry = {
            "member": name,
            "seeds": len(mine),
            "params": mine[0]["params"],
            "epochs": mine[0]["epochs"],
            "wall_s_mean": float(np.mean([r["wall_s"] for r in mine])),
        }
        for key in ("test_bits_per_dim", "frechet", "class_entropy", "confidence", "test_mmd"):
            if all(key in r for r in mine):
                mean, std, half = interval(r[key] for r in mine)
                entry.update({f"{key}_mean": mean, f"{key}_std": std, f"{key}_ci95": half})
        table.append(entry)
    table.append(
        {
            "member": "real digits (train vs test)",
            "seeds": 1,
            "params": "",
            "epochs": "",
            "wall_s_mean": "",
            **{f"{k}_mean": v for k, v in real.items()},
        }
    )
    return table


def _cell(r: dict, key: str, digits: int = 2) -> str:
    if f"{key}_mean" not in r:
        return "—"
    return f"{r[f'{key}_mean']:.{digits}f}" + (f" ± {r[f'{key}_ci95']:.{digits}f}" if f"{key}_ci95" in r else "")


def write_report(study_dir: Path, s: DictConfig, rows: list[dict], table: list[dict], wall_s: float) -> None:
    by = {r["member"]: r for r in table}
    lines = [
        "# Generative families on digits",
        "",
        f"Each family trained on digits (1,257 training images of 8×8 pixels, 17 grey levels) with the recipe "
        f"`{' '.join(s.recipe)}` and its own overrides, seeds {list(s.seeds)}; {s.samples} samples each, drawn with the "
        f"run's seed, judged by the template's digits classifier (`{' '.join(s.classifier)}`; its last hidden layer gives "
        f"the features). ± is the half-width of the 95% interval over seeds. Wall time {wall_s:.0f} s.",
        "",
        "| family | test bits/dim | Fréchet distance ↓ | class entropy (bits, max 3.32) | classifier confidence | MMD ↓ | parameters "
        "| epochs | s per run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        params = f"{int(r['params']):,}" if r["params"] != "" else ""
        wall = f"{r['wall_s_mean']:.0f}" if r["wall_s_mean"] != "" else ""
        lines.append(
            f"| {r['member']} | {_cell(r, 'test_bits_per_dim', 3)} | {_cell(r, 'frechet')} | {_cell(r, 'class_entropy')} | "
            f"{_cell(r, 'confidence', 3)} | {_cell(r, 'test_mmd', 3)} | {params} | {r['epochs']} | {wall} |"
        )
    lines += [
        "",
        "Bits per dimension: the VAE's figure is its ELBO, an upper bound on −log₂ p(x) / 64; PixelCNN's is exact. "
        "Uniform over the 17 levels would be log₂ 17 = 4.09.",
        "",
        "## Claims and what was measured",
        "",
    ]
    if "vae" in by and "pixelcnn" in by:
        v, p = by["vae"], by["pixelcnn"]
        of = lambda name: {r["seed"]: r["test_bits_per_dim"] for r in rows if r["member"] == name}  # noqa: E731
        gap, half, k = paired(of("vae"), of("pixelcnn"))  # one seed's members share its split
        side = direction(gap, half, k)
        verdict = "consistent" if side > 0 else "the opposite, beyond the interval" if side < 0 else "not beyond the interval"
        verdict = verdict if k > 1 else "undecided: one seed, no interval"
        lines.append(
            f"- *An autoregressive model's exact likelihood beats a VAE's bound* (van den Oord et al. 2016): PixelCNN "
            f"{p['test_bits_per_dim_mean']:.3f} vs VAE ≤ {v['test_bits_per_dim_mean']:.3f} bits/dim, paired by seed {gap:.3f} ± "
            f"{half:.3f} lower — {verdict} ({k} seeds)."
        )
    families = [r for r in table if r["member"] in s.members]
    if families:
        best = min(families, key=lambda r: r["frechet_mean"])
        real = by["real digits (train vs test)"]
        lines.append(
            f"- Closest to the test digits in the classifier's features: {best['member']} (Fréchet {best['frechet_mean']:.2f}; "
            f"real training digits {real['frechet_mean']:.2f}, the floor)."
        )
        collapsed = [r["member"] for r in families if r["class_entropy_mean"] < 3.0]
        lines.append(
            f"- Mode collapse (class entropy under 3.0 bits, i.e. whole classes missing or rare): "
            f"{', '.join(collapsed) if collapsed else 'none of the four'}; real digits {real['class_entropy_mean']:.2f}."
        )
    lines += [
        "",
        "![samples](figures/samples.png)",
        "",
        "![Fréchet distance](figures/frechet.png)",
        "",
        "Files: `results.csv` (one row per run, with the sample scores), `summary.csv`, `figures/`, runs in "
        "`members/<family>/seed<k>/` (each with its own sample grids in `figures/`), the classifier in `classifier/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")


def draw_samples(study_dir: Path, names: list[str], seed: int, writer) -> None:
    """One row of 12 samples per family (seed ``seed``), 12 real test digits last."""
    from callbacks.plot_style import new_figure, save_figure
    from callbacks.samples import mosaic

    rows = []
    for name in names:
        _, module, dm = load_member(study_dir / "members" / name / f"seed{seed}")
        rows.append((name, module.sample_data(12, seed).numpy()))
    rows.append(("real", dm.arrays("test")[0][:12]))  # a generative member's data are raw (not normalized)
    fig, axes = new_figure(len(rows), 1, width=6.0, height=0.75)
    for ax, (name, x) in zip(axes[:, 0], rows):
        ax.imshow(mosaic(x, 12)[..., 0], cmap="gray_r", vmin=0, vmax=16, interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    fig.tight_layout(pad=0.3)
    save_figure(fig, study_dir / "figures", "samples", writer)


def run(cfg: DictConfig, study_dir: Path) -> dict:
    s, clock = cfg.study, Clock()
    check(s)
    names = chosen(s)
    classifier_dir = study_dir / "classifier"
    classifier = Unit("classifier", classifier_dir, (*s.recipe, *s.classifier, *member_overrides("seed=0")))
    rows = run_members(
        s, study_dir, names, lambda n: s.members[n].overrides, lambda n: s.epochs or s.members[n].epochs, also=[classifier]
    )  # the scoring classifier trains beside the members, where they do
    log.info(f"classifier: test accuracy {json.loads((classifier_dir / 'metrics.json').read_text())['test/acc']:.4f}")
    judge = Judge(classifier_dir)
    for row in rows:
        member_dir = study_dir / "members" / row["member"] / f"seed{row['seed']}"

        def scores(member_dir=member_dir, seed=row["seed"]):
            _, module, _ = load_member(member_dir)
            return judge.score(module.sample_data(s.samples, seed))

        row.update(cached(study_dir, f"scores_{row['member']}_seed{row['seed']}", scores))
        log.info(
            f"{row['member']} seed {row['seed']}: Fréchet {row['frechet']:.2f}, class entropy {row['class_entropy']:.2f} bits, "
            f"confidence {row['confidence']:.3f}"
        )
    table = summarize(rows, names, judge.reference())

    def draw(writer):
        families = [r for r in table if r["member"] in names]
        sorted_bars(
            families,
            "member",
            "frechet_mean",
            "frechet_ci95",
            "Fréchet distance to the test digits (classifier features)",
            study_dir / "figures",
            "frechet",
            writer,
            percent=False,
            suffix="",
        )
        draw_samples(study_dir, names, s.seeds[0], writer)

    finish(study_dir, clock, rows, table, draw, lambda wall_s: write_report(study_dir, s, rows, table, wall_s))
    best = min((r for r in table if r["member"] in names), key=lambda r: r["frechet_mean"])
    return {
        "closest": best["member"],
        "frechet": best["frechet_mean"],
        **{f"{n}_bits_per_dim": next(r["test_bits_per_dim_mean"] for r in table if r["member"] == n) for n in LIKELIHOOD if n in names},
    }
