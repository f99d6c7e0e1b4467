"""The one publication style every figure goes through: seaborn's colorblind palette and its
"paper, ticks" theme at 1.25× fonts, minimal spines; saved as vector PDF + 300-dpi PNG and, when a
writer is given, logged to TensorBoard under the same name. The theme's settings are written out
here rather than taken from seaborn, whose import alone costs about 1.5 s of every run."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import cycler  # noqa: E402

DPI = 300
# seaborn.color_palette("colorblind")
COLORBLIND = ("#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161", "#fbafe4", "#949494", "#ece133", "#56b4e9")
# what seaborn.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.25) sets
THEME = {
    "axes.axisbelow": True,
    "axes.edgecolor": ".15",
    "axes.labelcolor": ".15",
    "axes.labelsize": 12.0,
    "axes.linewidth": 1.0,
    "axes.prop_cycle": cycler("color", COLORBLIND),
    "axes.titlesize": 12.0,
    "font.size": 12.0,
    "font.sans-serif": ["Arial", "DejaVu Sans", "Liberation Sans", "Bitstream Vera Sans", "sans-serif"],
    "grid.color": ".8",
    "legend.fontsize": 11.0,
    "legend.title_fontsize": 12.0,
    "lines.linewidth": 1.2,
    "lines.markersize": 4.8,
    "lines.solid_capstyle": "round",
    "patch.edgecolor": "w",
    "patch.force_edgecolor": True,
    "patch.linewidth": 0.8,
    "text.color": ".15",
    "xtick.color": ".15",
    "xtick.labelsize": 11.0,
    "xtick.major.size": 4.8,
    "xtick.major.width": 1.0,
    "xtick.minor.size": 3.2,
    "xtick.minor.width": 0.8,
    "ytick.color": ".15",
    "ytick.labelsize": 11.0,
    "ytick.major.size": 4.8,
    "ytick.major.width": 1.0,
    "ytick.minor.size": 3.2,
    "ytick.minor.width": 0.8,
}


def apply_style() -> None:
    plt.rcParams.update(THEME)
    plt.rcParams.update(
        {
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "pdf.fonttype": 42,  # embedded TrueType: text stays text in the PDF
            "savefig.bbox": "tight",
            "figure.dpi": 100,
        }
    )


def palette(n: int) -> list:
    return [COLORBLIND[i % len(COLORBLIND)] for i in range(n)]  # as seaborn's: the ten colours, cycled


def save_figure(fig: plt.Figure, folder: Path, stem: str, writer=None, tag: Optional[str] = None, step: Optional[int] = None) -> list[Path]:
    """Write ``folder/stem.pdf`` and ``folder/stem.png`` (300 dpi); log to ``writer`` (a
    TensorBoard SummaryWriter) as ``tag`` (default ``figures/stem``) at ``step``; close the figure."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{stem}.pdf", folder / f"{stem}.png"]
    fig.savefig(paths[0])
    fig.savefig(paths[1], dpi=DPI)
    if writer is not None:
        writer.add_figure(tag or f"figures/{stem}", fig, global_step=step, close=False)
    plt.close(fig)
    return paths


def new_figure(rows: int = 1, cols: int = 1, width: float = 4.0, height: float = 3.2, **kwargs):
    """A figure of ``rows × cols`` panels, each ``width × height`` inches, in the house style."""
    apply_style()
    return plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False, **kwargs)


def writer_for(folder: Optional[Path]):
    """A TensorBoard SummaryWriter writing to ``folder`` (None → no logging)."""
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(folder))
