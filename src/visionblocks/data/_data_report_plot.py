"""``DataReport.plot``: class counts per split, image sizes, problems per split.

matplotlib is optional (the ``viz`` extra) and imported only when a report is drawn.
The figure is a :class:`matplotlib.figure.Figure` made directly, not through
``pyplot``, as ``visionblocks.analysis`` draws its figures: no GUI backend is touched.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from visionblocks.data._data_report import DataReport, merge_tallies

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_report"]

_ANNOTATED = 5  # sizes labelled with their count


def plot_report(report: DataReport, save: str | os.PathLike[str] | None = None) -> Figure:
    """Draw ``report``: see :meth:`DataReport.plot`."""
    try:
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "DataReport.plot needs matplotlib, which is optional: pip install visionblocks[viz]"
        ) from err
    height = max(3.2, 0.22 * len(report.classes) + 1.2)
    fig = Figure(figsize=(12, height), layout="constrained")
    counts, sizes, problems = fig.subplots(1, 3, width_ratios=(1.4, 1, 1))
    _plot_counts(counts, report)
    _plot_sizes(sizes, report)
    _plot_problems(problems, report)
    fig.suptitle(f"{report.name}: {report.images:,} images")
    if save is not None:
        fig.savefig(save, dpi=100)
    return fig


def _plot_counts(ax: Any, report: DataReport) -> None:
    count = len(report.splits)
    bar = 0.8 / count
    for j, split in enumerate(report.splits):
        offsets = [k + (j - (count - 1) / 2) * bar for k in range(len(report.classes))]
        ax.barh(offsets, split.class_counts, height=bar, label=split.name)
    ax.set_yticks(range(len(report.classes)), report.classes)
    ax.invert_yaxis()
    ratio = report.imbalance_ratio
    ax.set(xlabel="images", title=f"Images per class (imbalance {ratio:.2f} in "
           f"{report.splits[0].name})")  # fmt: skip
    # Below the axes: inside, it would hide the end of the longest bars.
    ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=count)
    ax.grid(axis="x", alpha=0.3)


def _plot_sizes(ax: Any, report: DataReport) -> None:
    sizes = merge_tallies([s.sizes for s in report.splits])
    if sizes:
        most = max(sizes.values())
        widths = [w for _, w in sizes]
        heights = [h for h, _ in sizes]
        area = [20 + 400 * n / most for n in sizes.values()]
        ax.scatter(widths, heights, s=area, alpha=0.6)
        for (h, w), n in list(sizes.items())[:_ANNOTATED]:
            ax.annotate(f"{n:,}", (w, h), textcoords="offset points", xytext=(6, 6))
        modes = ", ".join(
            f"{m} {n:,}" for m, n in merge_tallies([s.modes for s in report.splits]).items()
        )
        ax.set_title(f"Image sizes ({len(sizes)} distinct)\nmodes: {modes}", fontsize="medium")
        ax.set_xlim(0, 1.2 * max(widths))  # from 0: a single size is not blown up
        ax.set_ylim(0, 1.2 * max(heights))
    else:
        ax.set_title("Image sizes: no decodable image")
    ax.set(xlabel="width (pixels)", ylabel="height (pixels)")
    ax.grid(alpha=0.3)


def _plot_problems(ax: Any, report: DataReport) -> None:
    kinds = ("unreadable", "copy within split", "also in earlier split")
    names = [s.name for s in report.splits]
    values = [
        [len(s.unreadable) for s in report.splits],
        [report.copies_within(n) for n in names],
        [report.leaked(n) for n in names],
    ]
    for j, (kind, row) in enumerate(zip(kinds, values, strict=True)):
        bars = ax.bar([i + (j - 1) * 0.27 for i in range(len(names))], row, width=0.27, label=kind)
        ax.bar_label(bars, labels=[f"{n:,}" if n else "" for n in row], fontsize="small")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_xticks(range(len(names)), names)
    total = sum(map(sum, values))
    ax.set(ylabel="images", title="Problems per split" + ("" if total else ": none found"))
    ax.legend(fontsize="small")
    ax.grid(axis="y", alpha=0.3)
