"""``report.md`` of ``study=double_descent``: each claim from the literature beside what the study
measured, with a verdict that says how many seeds it rests on. The points a claim compares (the
first descent's minimum, the peak; the epochs of the epoch-wise curve) are chosen on the mean
validation curve, and the differences between them measured on the test split, paired by seed (a
seed's members at every width and noise level share its training signals)."""

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


def peak(table: list[dict], noise: float, key: str = "val_err") -> tuple[int, int] | None:
    """(width before the peak with the lowest ``key``, peak width) of the mean curve at ``noise``:
    chosen on the validation curve by default."""
    rs = [r for r in table if r["label_noise"] == noise]
    found = rise([r[key] for r in rs])
    return None if found is None else (rs[found[0]]["width"], rs[found[1]]["width"])


def heights(rows: list[dict], table: list[dict], noise: float) -> dict[int, float]:
    """Per seed, the test error at the peak minus at the lowest point before it, both chosen on the
    validation curve (0 where it never rises)."""
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


SECOND = "Past the threshold the widest network beats the best narrow one: the second descent goes below the first (Belkin et al. 2019)"


def model_wise(rows: list[dict], table: list[dict], s: DictConfig, noise: float, n: str, key: str = "test_err") -> list[str]:
    """The claim of a peak near the threshold and a fall beyond it, for the test error or (``key="test_loss"``) the
    test cross-entropy, the widths chosen on the validation curve of the same measure; and, for the error, that the
    second descent goes below the first."""
    t, widest = threshold(table, noise), s.widths[-1]
    what = "test error" if key == "test_err" else "test cross-entropy"
    choose = key.replace("test", "val")
    claim = f"{what[0].upper()}{what[1:]} peaks near the interpolation threshold and falls again beyond it" + (
        " (Belkin et al. 2019; Nakkiran et al. 2019)" if key == "test_err" else ""
    )
    second = key == "test_err"
    where = f"interpolation threshold width {t}" if t is not None else f"no width up to {widest} fits all its labels"
    if len(s.widths) < 3:
        lines = [f"| {claim} | {len(s.widths)} width(s) | undecided: a peak needs at least 3 widths |"]
        return lines + ([f"| {SECOND} | {len(s.widths)} width(s) | undecided |"] if second else [])
    found = peak(table, noise, choose)
    if found is None or found[1] == widest:
        why = "never rises with width" if found is None else f"is still highest at the widest width, {widest}"
        lines = [f"| {claim} | {where}; the validation {what.removeprefix('test ')} {why} | not observed up to width {widest}{n} |"]
        return lines + ([f"| {SECOND} | no peak before the widest width | undecided{n} |"] if second else [])
    low, high = found
    up, up_h, k = paired(at(rows, noise, high, key), at(rows, noise, low, key))
    down, down_h, _ = paired(at(rows, noise, widest, key), at(rows, noise, high, key))
    measured = (
        f"{where}; chosen on validation: the first descent's minimum at width {low}, the peak at width {high}; {what} rises "
        f"{said(up, up_h, key)} to the peak, then {said(down, down_h, key)} to width {widest} (paired)"
    )
    verdict = shape_verdict(direction(up, up_h, k) > 0, direction(down, down_h, k) < 0)
    if verdict == "consistent" and (t is None or not t / 2 <= high <= 2 * t):
        verdict = f"partly: a peak and a second descent, but at width {high}, " + (
            "and no width fits all its labels" if t is None else f"not within 2× of the threshold {t}"
        )
    lines = [f"| {claim} | {measured} | {verdict}{n} |"]
    if second:
        best, best_h, _ = paired(at(rows, noise, widest), at(rows, noise, low))
        side = direction(best, best_h, k)
        verdict = "consistent" if side < 0 else "not observed: higher" if side > 0 else "undecided: within the interval"
        lines.append(f"| {SECOND} | width {widest} − width {low} (the first descent's minimum): {said(best, best_h)} | {verdict}{n} |")
    return lines


def noise_claim(rows: list[dict], table: list[dict], s: DictConfig, n: str) -> str:
    claim = "The peak shrinks without label noise (Nakkiran et al. 2019)"
    noisy = s.label_noise[0]
    if 0.0 not in list(s.label_noise) or noisy == 0 or len(s.widths) < 3:
        return f"| {claim} | needs a noisy first level, 0.0 in study.label_noise and 3 widths or more | undecided |"
    hn, hc = heights(rows, table, noisy), heights(rows, table, 0.0)
    d, h, k = paired(hn, hc)
    mean = lambda x: 100 * float(np.mean(list(x.values())))  # noqa: E731
    measured = (
        f"test error at the peak above the first descent's minimum (both chosen on validation): {mean(hn):.1f} points at "
        f"{noisy:.0%} noise, {mean(hc):.1f} clean: {said(d, h)}"
    )
    if not any(hn.values()):
        verdict = f"undecided: no peak at {noisy:.0%} noise either"
    else:
        verdict = "consistent" if direction(d, h, k) > 0 else "not observed: not beyond the interval"
    return f"| {claim} | {measured} | {verdict}{n} |"


def epoch_claim(curves: dict, s: DictConfig, n: str) -> str:
    noise, widest = s.label_noise[0], s.widths[-1]
    c = curves[(noise, widest)]
    epochs, test, val = c["epoch"], np.array(c["test_err"]), np.array(c["val_err"])  # (measurements, seeds)
    per = lambda i: dict(zip(s.seeds, test[i]))  # noqa: E731
    claim = (
        f"Epoch-wise double descent: a wide network's test error rises while it fits {'the noisy' if noise else 'its'} labels, "
        f"then falls again with longer training (Nakkiran et al. 2019); here width {widest}"
    )
    if len(epochs) < 3:
        return f"| {claim} | {len(epochs)} measurement(s) (study.eval_every) | undecided: a rise and fall needs 3 or more |"
    found = rise(list(val.mean(1)))  # the epochs compared, chosen on the validation curve
    mean = test.mean(1)
    if found is None:
        return (
            f"| {claim} | the validation error never rises during training (test {mean[0]:.3f} at epoch {epochs[0]} → "
            f"{mean[-1]:.3f}) | not observed within {epochs[-1]} epochs{n} |"
        )
    lo, hi = found
    up, up_h, k = paired(per(hi), per(lo))
    measured = (
        f"epochs chosen on validation; test error {mean[lo]:.3f} at epoch {epochs[lo]} → {mean[hi]:.3f} at epoch {epochs[hi]} "
        f"({said(up, up_h)})"
    )
    if hi == len(epochs) - 1:
        return f"| {claim} | {measured}, highest at the end | not observed within {epochs[-1]} epochs: no fall after the rise{n} |"
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
        f"fraction {', '.join(f'{p:g}' for p in levels)} of their labels by another class, and {s.n_val} more signals with clean "
        f"labels that it never trains on, its validation set; every width trains {s.epochs} epochs "
        f"(batch {s.batch_size}, {cfg.optimizer.name} at lr {s.lr:g}, weight decay {cfg.regularization.weight_decay:g}), the seeds of "
        f"a width as one fit. Errors on the 1,000 test signals, mean ± 95% CI over seeds. The widths and epochs a claim compares "
        f"are chosen on the mean validation curve; the differences between them are measured on the test split, paired by seed. "
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
        "| width | parameters | "
        + " | ".join(f"train err, {p:g} noise | val err, {p:g} noise | test err, {p:g} noise" for p in levels)
        + " |",
        "|---|---|" + "---|---|---|" * len(levels),
    ]
    for width in s.widths:
        cells = []
        for p in levels:
            r = next(x for x in table if x["label_noise"] == p and x["width"] == width)
            mark = " (threshold)" if width == threshold(table, p) else ""
            cells += [f"{r['train_err']:.3f}{mark}", f"{r['val_err']:.3f}", f"{r['test_err']:.3f} ± {r['test_err_ci']:.3f}"]
        lines.append(f"| {width} | {params[width]:,} | " + " | ".join(cells) + " |")
    tp = f"width {t}, {params[t]:,} parameters for {s.n_train} training signals" if t is not None else "not reached"
    lines += [
        "",
        f"The interpolation threshold at {levels[0]:g} label noise (the first width whose members fit 99.9% of their training "
        f"labels, mean over seeds): {tp}.",
        "",
        "## At larger scale",
        "",
        "The threshold is where the network can just fit every training label, so it moves to wider networks with more training "
        "signals (study.n_train) and, for a fixed width, with fewer noisy labels to memorize. The papers' curves come from far "
        "longer budgets (Nakkiran et al. train ResNets and Transformers for 4,000 epochs), where the widths near the threshold "
        "fit their labels exactly and the wide networks go on training long after they interpolate, which is where they report "
        "epoch-wise double descent. They also report that tuned regularization (here regularization.weight_decay) flattens the "
        "peak (Nakkiran et al. 2020).",
        "",
        "![double descent](figures/double_descent.png)",
        "",
        "Files: `results.csv` (per noise level, seed and width), `summary.csv` (means and `*_ci` intervals), `parts/` (each "
        "width's fit with its epoch-wise curve, kept for `study.resume`), `figures/`.",
    ]
    write_text_atomic(study_dir / "report.md", "\n".join(lines) + "\n")
