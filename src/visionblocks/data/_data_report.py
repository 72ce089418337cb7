"""What :func:`~visionblocks.data.inspect_data` found: counts, sizes, unreadable files, duplicates.

A :class:`DataReport` holds one :class:`SplitReport` per split (train first, then val,
test) and the groups of images with identical pixels (:class:`DuplicateGroup`). It
prints as a summary, says in one line each what would hurt a training run
(:meth:`DataReport.warnings`), writes itself as JSON (:meth:`DataReport.to_dict`) and
draws itself (:meth:`DataReport.plot`, with the optional matplotlib).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DEFAULT_MAX_IMBALANCE",
    "DataReport",
    "DuplicateGroup",
    "ImageRef",
    "SplitReport",
    "merge_tallies",
    "size_text",
]

DEFAULT_MAX_IMBALANCE = 10.0
"""Largest/smallest class count of the training split above which the report warns."""
_SHOWN = 5  # examples listed per kind of problem in the summary


@dataclass(frozen=True)
class ImageRef:
    """One image of a report: its split, its position in the split, its class, its file.

    Attributes:
        split: The split's name, e.g. ``"train"``.
        index: Position in the split (the dataset's index; for a folder, in its file order).
        label: Class name.
        path: The image file; ``None`` for images held in memory.

    Example:
        >>> ImageRef("test", 7, "Bag")
        ImageRef(split='test', index=7, label='Bag', path=None)
    """

    split: str
    index: int
    label: str
    path: Path | None = None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else f"{self.split}[{self.index}]"


@dataclass(frozen=True)
class SplitReport:
    """Counts, sizes and modes of one split, and its files that cannot be decoded.

    Attributes:
        name: ``"train"``, ``"val"``, ``"test"`` (or a name given to ``inspect_data``).
        images: Images in the split, unreadable ones included.
        class_counts: Images of each class, in the report's class order.
        sizes: ``{(height, width): images}`` of the decodable images, most common first.
        modes: ``{mode: images}``: Pillow's mode of each file (``"L"``, ``"RGB"``,
            ``"P"``, ``"RGBA"``, ``"I;16"``, ...); for images in memory ``"L"`` or
            ``"RGB"`` (uint8), else channels and dtype.
        unreadable: ``(image, reason)`` of each file the decoder refuses.

    Example:
        >>> split = SplitReport("train", 3, (2, 1), {(28, 28): 3}, {"L": 3})
        >>> split.imbalance_ratio, split.unreadable
        (2.0, ())
    """

    name: str
    images: int
    class_counts: tuple[int, ...]
    sizes: dict[tuple[int, int], int]
    modes: dict[str, int]
    unreadable: tuple[tuple[ImageRef, str], ...] = ()

    @property
    def imbalance_ratio(self) -> float:
        """Images of the largest class over images of the smallest: 1.0 is balanced.

        ``inf`` when a class has no images in this split; ``nan`` when the split is empty.

        Example:
            >>> SplitReport("train", 130, (100, 20, 10), {}, {}).imbalance_ratio
            10.0
        """
        if not self.class_counts or max(self.class_counts) == 0:
            return math.nan
        smallest = min(self.class_counts)
        return math.inf if smallest == 0 else max(self.class_counts) / smallest


@dataclass(frozen=True)
class DuplicateGroup:
    """Two or more images with identical decoded pixels (same size, channels and values).

    Attributes:
        images: The copies, in split order, then in each split's order.

    Example:
        >>> group = DuplicateGroup((ImageRef("train", 3, "Bag"), ImageRef("test", 9, "Coat")))
        >>> group.splits, group.crosses_splits, group.labels_differ
        (('train', 'test'), True, True)
    """

    images: tuple[ImageRef, ...]

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits the copies are in, each once, in order."""
        return tuple(dict.fromkeys(ref.split for ref in self.images))

    @property
    def crosses_splits(self) -> bool:
        """Whether copies sit in two or more splits: leakage between them."""
        return len(self.splits) > 1

    @property
    def labels_differ(self) -> bool:
        """Whether the copies carry different labels: at least one of them is mislabelled."""
        return len({ref.label for ref in self.images}) > 1


@dataclass(frozen=True)
class DataReport:
    """What :func:`~visionblocks.data.inspect_data` found in a dataset, split by split.

    ``print(report)`` shows the summary; :meth:`warnings` lists the problems, one line
    each; :meth:`to_dict` is the JSON form and :meth:`plot` draws class counts, sizes and
    problems per split.

    Attributes:
        name: The dataset, as given.
        classes: Class names; every split's ``class_counts`` follow this order.
        splits: One report per split, the training split first.
        duplicates: Every group of images with identical decoded pixels, in and across
            splits, ordered by their first image.
        max_imbalance: Class imbalance ratio of the training split above which
            :meth:`warnings` warns.

    Example:
        >>> import torch
        >>> images = torch.zeros(6, 1, 4, 4, dtype=torch.uint8)
        >>> images[:, 0, 0, 0] = torch.tensor([1, 2, 3, 4, 5, 1])  # image 5 copies image 0
        >>> from visionblocks.data import inspect_data
        >>> report = inspect_data((images, torch.tensor([0, 1, 0, 1, 0, 0])))
        >>> report.splits[0].class_counts, report.imbalance_ratio
        ((4, 2), 2.0)
        >>> [str(ref) for ref in report.duplicates[0].images]
        ['train[0]', 'train[5]']
        >>> report.warnings()
        []
    """

    name: str
    classes: tuple[str, ...]
    splits: tuple[SplitReport, ...]
    duplicates: tuple[DuplicateGroup, ...] = ()
    max_imbalance: float = DEFAULT_MAX_IMBALANCE

    def split(self, name: str) -> SplitReport:
        """The report of the split called ``name``."""
        for split in self.splits:
            if split.name == name:
                return split
        known = ", ".join(repr(s.name) for s in self.splits)
        raise ValueError(f"{self.name} has no split {name!r}; its splits are {known}.")

    @property
    def images(self) -> int:
        """Images in all splits."""
        return sum(split.images for split in self.splits)

    @property
    def imbalance_ratio(self) -> float:
        """The training split's :attr:`SplitReport.imbalance_ratio` (the first split's)."""
        return self.splits[0].imbalance_ratio

    @property
    def unreadable(self) -> tuple[tuple[ImageRef, str], ...]:
        """Every file the decoder refuses, with the reason, split by split."""
        return tuple(item for split in self.splits for item in split.unreadable)

    def copies_within(self, split: str) -> int:
        """Images of ``split`` that repeat an earlier image of the same split."""
        return sum(
            max(0, sum(ref.split == split for ref in group.images) - 1) for group in self.duplicates
        )

    def leaked(self, split: str) -> int:
        """Images of ``split`` whose pixels are also in an earlier split (val: train; test: both).

        These are the images that measure memory rather than generalization.
        """
        order = [s.name for s in self.splits]
        earlier = set(order[: order.index(split)]) if split in order else set()
        return sum(
            sum(ref.split == split for ref in group.images)
            for group in self.duplicates
            if earlier & set(group.splits)
        )

    def warnings(self) -> list[str]:
        """One line per problem that would hurt training; an empty list when there is none.

        Unreadable files, a class with no images in a split, fewer than two classes, a
        training split more imbalanced than :attr:`max_imbalance`, images shared between
        splits (leakage) and copies with different labels. Copies within one split are
        reported by ``str(report)`` but are not a warning: they weigh an image twice.
        """
        lines: list[str] = []
        if self.unreadable:
            first = self.unreadable[0][0]
            lines.append(
                f"{len(self.unreadable):,} file(s) cannot be decoded (e.g. {first}); "
                f"load_dataset stops at the first: replace or remove them."
            )
        if len(self.classes) < 2:
            lines.append(f"{self.name} has {len(self.classes)} class(es); a classifier needs two.")
        for split in self.splits:
            empty = [c for c, n in zip(self.classes, split.class_counts, strict=True) if n == 0]
            if empty and split.images:
                lines.append(f"{split.name} has no images of class(es) {', '.join(empty)}.")
        lines += self._imbalance_warning()
        for split in self.splits[1:]:
            leaked = self.leaked(split.name)
            if leaked:
                earlier = " or ".join(s.name for s in self.splits[: self.splits.index(split)])
                lines.append(
                    f"{leaked:,} {split.name} image(s) are also in {earlier} (identical "
                    f"pixels): {split.name} accuracy counts them as seen; remove the copies."
                )
        conflicting = [g for g in self.duplicates if g.labels_differ]
        if conflicting:
            group = conflicting[0]
            lines.append(
                f"{len(conflicting):,} group(s) of identical images carry different labels, "
                f"e.g. {_refs(group)}."
            )
        return lines

    def _imbalance_warning(self) -> list[str]:
        train = self.splits[0]
        ratio = train.imbalance_ratio
        if math.isnan(ratio) or math.isinf(ratio) or ratio <= self.max_imbalance:
            return []  # an empty class is its own warning
        counts = train.class_counts
        big, small = counts.index(max(counts)), counts.index(min(counts))
        return [
            f"{train.name} is imbalanced {ratio:.1f}:1 ({self.classes[big]} {counts[big]:,} "
            f"images, {self.classes[small]} {counts[small]:,}); consider "
            f"class_weight='balanced' and read per-class recall, not only accuracy."
        ]

    def __str__(self) -> str:
        lines = [
            f"{self.name}: {self.images:,} images in {len(self.splits)} split(s) ("
            + ", ".join(f"{s.name} {s.images:,}" for s in self.splits)
            + f"), {len(self.classes)} classes"
        ]
        lines += _count_table(self)
        lines.append(_tally("sizes", merge_tallies([s.sizes for s in self.splits]), size_text))
        lines.append(_tally("modes", merge_tallies([s.modes for s in self.splits]), str))
        lines += _unreadable_lines(self)
        lines += _duplicate_lines(self)
        problems = self.warnings()
        lines.append(f"warnings: {len(problems)}" if problems else "warnings: none")
        lines += [f"  {line}" for line in problems]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (an infinite ratio is ``None``)."""

        def ref(r: ImageRef) -> dict[str, Any]:
            path = None if r.path is None else str(r.path)
            return {"split": r.split, "index": r.index, "label": r.label, "path": path}

        def ratio(x: float) -> float | None:
            return None if math.isinf(x) or math.isnan(x) else round(x, 4)

        return {
            "name": self.name,
            "images": self.images,
            "classes": list(self.classes),
            "imbalance_ratio": ratio(self.imbalance_ratio),
            "max_imbalance": self.max_imbalance,
            "splits": {
                s.name: {
                    "images": s.images,
                    "class_counts": dict(zip(self.classes, s.class_counts, strict=True)),
                    "imbalance_ratio": ratio(s.imbalance_ratio),
                    "sizes": {size_text(size): n for size, n in s.sizes.items()},
                    "modes": dict(s.modes),
                    "unreadable": [{**ref(r), "reason": why} for r, why in s.unreadable],
                    "copies_within": self.copies_within(s.name),
                    "also_in_earlier_split": self.leaked(s.name),
                }
                for s in self.splits
            },
            "duplicates": [
                {"images": [ref(r) for r in g.images], "labels_differ": g.labels_differ}
                for g in self.duplicates
            ],
            "warnings": self.warnings(),
        }

    def plot(self, save: str | os.PathLike[str] | None = None) -> Figure:
        """Class counts per split, image sizes, and problems per split, side by side.

        Needs the optional matplotlib (``pip install visionblocks[viz]``). With ``save``,
        the figure is also written to that file (PNG by its suffix).
        """
        from visionblocks.data._data_report_plot import plot_report  # matplotlib is optional

        return plot_report(self, save)


def _refs(group: DuplicateGroup, limit: int = 4) -> str:
    shown = [f"{ref} ({ref.split}, {ref.label})" for ref in group.images[:limit]]
    more = len(group.images) - limit
    return " = ".join(shown) + (f" and {more} more" if more > 0 else "")


def size_text(size: tuple[int, int]) -> str:
    """``(height, width)`` as ``"WxH"``, width first as image viewers (and Pillow) say it.

    Example:
        >>> size_text((24, 32))
        '32x24'
    """
    return f"{size[1]}x{size[0]}"


def merge_tallies(tallies: Sequence[dict[Any, int]]) -> dict[Any, int]:
    """The counts of several ``{key: count}`` tallies added up, the largest first."""
    total: dict[Any, int] = {}
    for tally in tallies:
        for key, n in tally.items():
            total[key] = total.get(key, 0) + n
    return dict(sorted(total.items(), key=lambda kv: -kv[1]))


def _tally(title: str, tally: dict[Any, int], text: Any) -> str:
    items = list(tally.items())
    shown = ", ".join(f"{text(key)} ({n:,})" for key, n in items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return f"{title}: {shown or 'none'}{more}"


def _count_table(report: DataReport) -> list[str]:
    names = [s.name for s in report.splits]
    width = max([len("imbalance (largest/smallest)"), *map(len, report.classes)])
    columns = [max(8, len(n) + 2) for n in names]

    def row(label: str, cells: Sequence[str]) -> str:
        return (
            "  "
            + label.ljust(width)
            + "".join(c.rjust(w) for c, w in zip(cells, columns, strict=True))
        )

    lines = [row("class", names)]
    for k, name in enumerate(report.classes):
        lines.append(row(name, [f"{s.class_counts[k]:,}" for s in report.splits]))
    ratios = [s.imbalance_ratio for s in report.splits]
    lines.append(row("imbalance (largest/smallest)", [f"{r:.2f}" for r in ratios]))
    return lines


def _unreadable_lines(report: DataReport) -> list[str]:
    found = report.unreadable
    if not found:
        return ["unreadable files: none"]
    lines = [f"unreadable files: {len(found):,}"]
    lines += [f"  {reason}" for _, reason in found[:_SHOWN]]
    if len(found) > _SHOWN:
        lines.append(f"  ... and {len(found) - _SHOWN:,} more")
    return lines


def _duplicate_lines(report: DataReport) -> list[str]:
    groups = report.duplicates
    if not groups:
        return ["duplicates (identical decoded pixels): none"]
    within = ", ".join(f"{s.name} {report.copies_within(s.name):,}" for s in report.splits)
    leaked = ", ".join(f"{s.name} {report.leaked(s.name):,}" for s in report.splits[1:])
    lines = [
        f"duplicates (identical decoded pixels): {len(groups):,} group(s); extra copies "
        f"within a split: {within}" + (f"; also in an earlier split: {leaked}" if leaked else "")
    ]
    # Leakage and label conflicts first: they are what the warnings are about.
    ranked = sorted(groups, key=lambda g: (not g.crosses_splits, not g.labels_differ))
    lines += [
        f"  {_refs(g)}{'  [labels differ]' if g.labels_differ else ''}" for g in ranked[:_SHOWN]
    ]
    if len(groups) > _SHOWN:
        lines.append(f"  ... and {len(groups) - _SHOWN:,} more group(s)")
    return lines
