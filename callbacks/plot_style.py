"""The one publication style every figure goes through: seaborn's colorblind palette, readable
fonts, minimal spines; saved as vector PDF + 300-dpi PNG and, when a writer is given, logged to
TensorBoard under the same name."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only: no display needed, none opened
import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

DPI = 300


def apply_style() -> None:
    sns.set_theme(context="paper", style="ticks", palette="colorblind", font_scale=1.25)
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
    return sns.color_palette("colorblind", n)


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
