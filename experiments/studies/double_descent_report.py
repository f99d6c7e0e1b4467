"""``report.md`` of ``study=double_descent``: each claim from the literature beside what the study
measured, every difference paired by seed (a seed's members at every width and noise level share its
training signals), with a verdict that says how many seeds it rests on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from core.files import write_text_atomic
from experiments.studies.double_descent import threshold
from numerics.intervals import direction, paired


def at(rows: list[dict], noise: float, width: int, key: str = "test_err") -> dict[int, float]:
    """``key`` per seed at (noise, width)."""
    return {r["seed"]: r[key] for r in rows if r["label_noise"] == noise and r["width"] == width}


def rise(values: list[float]) -> tuple[int, int] | None:
    """(i_low, i_high): the point ``i_high`` whose value rises most above the lowest value before it,
    ``i_low``; None when the values never rise (each at most every earlier one)."""
    best, lows = 0.0, None
    for i, v in enumerate(values):
        j = int(np.argmin(values[: i + 1]))
        if v - values[j] > best:
            best, lows = v - values[j], (j, i)
    return lows


def peak(table: list[dict], noise: float, key: str = "test_err") -> tuple[int, int] | None:
    """(width before the peak with the lowest ``key``, peak width) of the mean curve at ``noise``."""
    rs = [r for r in table if r["label_noise"] == noise]
    found = rise([r[key] for r in rs])
    return None if found is None else (rs[found[0]]["width"], rs[found[1]]["width"])


def heights(rows: list[dict], table: list[dict], noise: float) -> dict[int, float]:
    """Per seed, the test error at the curve's peak minus at its lowest point before it (0 without a rise)."""
    found = peak(table, noise)
    seeds = sorted({r["seed"] for r in rows if r["label_noise"] == noise})
    if found is None:
        return {seed: 0.0 for seed in seeds}
    low, high = at(rows, noise, found[0]), at(rows, noise, found[1])
    return {seed: high[seed] - low[seed] for seed in seeds}


def said(d: float, h: float, key: str = "test_err") -> str:
    return f"{100 * d:+.1f} ± {100 * h:.1f} points" if key.endswith("err") else f"{d:+.3f} ± {h:.3f}"


def shape_verdict(rose: bool, fell: bool) -> str:
    """A rise then a fall, each beyond its paired interval, or which of the two is missing."""
    if rose and fell:
        return "consistent"
    if rose:
        return "not observed: it rises beyond the interval, but the fall after the peak is within it"
    if fell:
        return "not observed: it falls after the peak beyond the interval, but the rise to the peak is within it"
    return "not observed: neither the rise nor the fall is beyond its interval"


def model_wise(rows: list[dict], table: list[dict], s: DictConfig, noise: float, n: str, key: str = "test_err") -> list[str]:
    """The claim of a peak near the threshold and a fall beyond it, for the test error or (``key="test_loss"``) the
    test cross-entropy; and, for the error, that the second descent goes below the first."""
    t, widest = threshold(table, noise), s.widths[-1]
    found = peak(table, noise, key)
    what = "test error" if key == "test_err" else "test cross-entropy"
    where = f"interpolation threshold width {t}" if t is not None else f"no width up to {widest} fits all its labels"
    claim = f"{what[0].upper()}{what[1:]} peaks near the interpolation threshold and falls again beyond it" + (
        " (Belkin et al. 2019; Nakkiran et al. 2019)" if key == "test_err" else ""
    )
    if found is None:
        return [f"| {claim} | {where}; the {what} never rises with width | not observed{n} |"]
    low, high = found
    up, up_h, k = paired(at(rows, noise, high, key), at(rows, noise, low, key))
    measured = f"{where}; {what} rises {said(up, up_h, key)} from width {low} to its peak at width {high}"
    if high == widest:
        return [f"| {claim} | {measured}, still highest at the widest width | not observed up to width {widest}{n} |"]
    down, down_h, _ = paired(at(rows, noise, widest, key), at(rows, noise, high, key))
    measured += f", then {said(down, down_h, key)} to width {widest} (paired)"
    near = t is not None and t / 2 <= high <= 2 * t
    verdict = shape_verdict(direction(up, up_h, k) > 0, direction(down, down_h, k) < 0)
    if verdict == "consistent" and not near:
        verdict = f"partly: a peak and a second descent, but at width {high}, not within 2× of the threshold"
    lines = [f"| {claim} | {measured} | {verdict}{n} |"]
    if key != "test_err":
        return lines
    best, best_h, _ = paired(at(rows, noise, widest), at(rows, noise, low))
    second = (
        "consistent"
        if direction(best, best_h, k) < 0
        else "not observed: higher"
        if direction(best, best_h, k) > 0
        else "undecided: within the interval"
    )
    lines.append(
        f"| Past the threshold the widest network beats the best narrow one: the second descent goes below the first (Belkin et al. 2019) "
        f"| width {widest} − width {low} (the first descent's minimum): {said(best, best_h)} | {second}{n} |"
    )
    return lines


def noise_claim(rows: list[dict], table: list[dict], s: DictConfig, n: str) -> str:
    claim = "The peak shrinks without label noise (Nakkiran et al. 2019)"
    noisy = s.label_noise[0]
    if 0.0 not in list(s.label_noise) or noisy == 0:
        return f"| {claim} | needs a noisy first level and 0.0 in study.label_noise | undecided |"
    hn, hc = heights(rows, table, noisy), heights(rows, table, 0.0)
    d, h, k = paired(hn, hc)
    mean = lambda x: 100 * float(np.mean(list(x.values())))  # noqa: E731
    measured = (
        f"peak height (above the first descent's minimum) {mean(hn):.1f} points at {noisy:.0%} noise, {mean(hc):.1f} clean: {said(d, h)}"
    )
    if not any(hn.values()):
        verdict = f"undecided: no peak at {noisy:.0%} noise either"
    else:
        verdict = "consistent" if direction(d, h, k) > 0 else "not observed: not beyond the interval"
    return f"| {claim} | {measured} | {verdict}{n} |"


def epoch_claim(curves: dict, s: DictConfig, n: str) -> str:
    noise, widest = s.label_noise[0], s.widths[-1]
    c = curves[(noise, widest)]
    epochs, err = c["epoch"], np.array(c["test_err"])  # (measurements, seeds)
    per = lambda i: dict(zip(s.seeds, err[i]))  # noqa: E731
    mean = err.mean(1)
    claim = (
        f"Epoch-wise double descent: a wide network's test error rises while it fits the noisy labels, then falls again with "
        f"longer training (Nakkiran et al. 2019); here width {widest}"
    )
    found = rise(list(mean))
    if found is None:
        return f"| {claim} | test error falls throughout training ({mean[0]:.3f} at epoch {epochs[0]} → {mean[-1]:.3f}) | not observed{n} |"
    lo, hi = found
    up, up_h, k = paired(per(hi), per(lo))
    measured = f"test error {mean[lo]:.3f} at epoch {epochs[lo]} → {mean[hi]:.3f} at epoch {epochs[hi]} ({said(up, up_h)})"
    if hi == len(epochs) - 1:
        rose = direction(up, up_h, k) > 0
        return (
            f"| {claim} | {measured}, highest at the end | not observed within {epochs[-1]} epochs{': it only rises' if rose else ''}{n} |"
        )
    down, down_h, _ = paired(per(len(epochs) - 1), per(hi))
    measured += f" → {mean[-1]:.3f} at epoch {epochs[-1]} ({said(down, down_h)})"
    verdict = shape_verdict(direction(up, up_h, k) > 0, direction(down, down_h, k) < 0)
    if verdict != "consistent":
        verdict = verdict.replace("not observed", f"not observed within {epochs[-1]} epochs", 1)
    return f"| {claim} | {measured} | {verdict}{n} |"


def write_report(study_dir: Path, cfg: DictConfig, rows: list[dict], table: list[dict], curves: dict, wall_s: float) -> None:
    s = cfg.study
    n = f" ({len(s.seeds)} seeds)"
    levels = list(s.label_noise)
    t = threshold(table, levels[0])
    params = {r["width"]: r["params"] for r in table}
    lines = [
        "# Double descent",
        "",
        f"MLPs with {s.depth} hidden layer{'s' if s.depth > 1 else ''} of each width {list(s.widths)} (ReLU) on MNIST-1D: each seed "
        f"{list(s.seeds)} draws its own {s.n_train} of the 4,000 training signals (the same at every noise level) and replaces a "
        f"fraction {', '.join(f'{p:g}' for p in levels)} of their labels by another class; every width trains {s.epochs} epochs "
        f"(batch {s.batch_size}, {cfg.optimizer.name} at lr {s.lr:g}, weight decay {cfg.regularization.weight_decay:g}), the seeds of "
        f"a width as one fit. Errors on the 1,000 test signals, mean ± 95% CI over seeds; differences paired by seed. "
        f"Wall time {wall_s:.0f} s.",
        "",
        "## Claims and what this study measured",
        "",
        "| claim | measured here | verdict |",
        "|---|---|---|",
        *model_wise(rows, table, s, levels[0], n),
        *model_wise(rows, table, s, levels[0], n, "test_loss"),
        noise_claim(rows, table, s, n),
        epoch_claim(curves, s, n),
        "",
        "| width | parameters | " + " | ".join(f"train err, {p:g} noise | test err, {p:g} noise" for p in levels) + " |",
        "|---|---|" + "---|---|" * len(levels),
    ]
    for width in s.widths:
        cells = []
        for p in levels:
            r = next(x for x in table if x["label_noise"] == p and x["width"] == width)
            mark = " (threshold)" if width == threshold(table, p) else ""
            cells += [f"{r['train_err']:.3f}{mark}", f"{r['test_err']:.3f} ± {r['test_err_ci']:.3f}"]
        lines.append(f"| {width} | {params[width]:,} | " + " | ".join(cells) + " |")
    tp = f"width {t}, {params[t]:,} parameters for {s.n_train} training signals" if t is not None else "not reached"
    lines += [
        "",
        f"The interpolation threshold at {levels[0]:g} label noise: {tp}. The test split is only measured: nothing here is chosen by it.",
        "",
        "## At larger scale",
        "",
        "The threshold is where the network can just fit every training label, so it moves to wider networks with more training "
        "signals (study.n_train) and, for a fixed width, with fewer noisy labels to memorize. The papers' curves come from far "
        "longer budgets (Nakkiran et al. train ResNets and Transformers for 4,000 epochs): a longer budget lets the widths near "
        "the threshold fit their labels exactly, which sharpens the peak, and lets the wide networks' test error fall further "
        "after they interpolate, which is where epoch-wise double descent appears. Explicit regularization (weight decay, "
        "regularization.weight_decay) or early stopping on a validation split flattens the peak (Nakkiran et al. 2020, "
        "optimal regularization).",
        "",
        "![double descent](figures/double_descent.png)",
        "",
        "Files: `results.csv` (per noise level, seed and width), `summary.csv` (means and `*_ci` intervals), `parts/` (each "
        "width's fit with its epoch-wise curve, kept for `study.resume`), `figures/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")
