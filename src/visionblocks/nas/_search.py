"""A small architecture search with Optuna: :func:`search`.

Optuna (https://optuna.org) does the sampling (TPE, seeded) and the pruning
(median rule on the per-epoch validation accuracy); visionblocks supplies the
search space, the short training runs (:func:`visionblocks.train.fit`) and the
result table. Optuna is an optional extra: ``pip install visionblocks[nas]``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from visionblocks.data import ImageDataset, InMemoryData, describe_data, tensors_of
from visionblocks.nas._space import ArchConfig, SearchSpace
from visionblocks.train import Callback, fit

if TYPE_CHECKING:
    from visionblocks.train import RunState

__all__ = ["SearchResult", "TrialResult", "search"]


@dataclass(frozen=True)
class TrialResult:
    """One trained (or pruned) candidate.

    Attributes:
        number: Trial index, from 0.
        config: The architecture.
        params: Its number of parameters.
        val_acc: Best validation accuracy over its epochs (``nan`` if never trained).
        epochs: Epochs it trained before finishing or being pruned.
        state: ``"complete"``, ``"pruned"`` (stopped early by the median rule),
            ``"too big"`` (over ``max_params``, not trained) or ``"repeat"`` (an
            architecture already trained: its score is reused, nothing is trained).
        seconds: Wall-clock time of the trial.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> space = SearchSpace(num_stages=1, kernel_sizes=(3,), depths=(1,), widths=(4, 8))
        >>> result = search(load_dataset("sample"), space=space, n_trials=2, epochs=1,
        ...                 progress=False)
        >>> trial = result.trials[0]
        >>> trial.number, trial.state, trial.epochs
        (0, 'complete', 1)
        >>> trial.params == sum(p.numel() for p in trial.config.build(10, 1).parameters())
        True
    """

    number: int
    config: ArchConfig
    params: int
    val_acc: float
    epochs: int
    state: str
    seconds: float


@dataclass
class SearchResult:
    """What :func:`search` found.

    Attributes:
        best: The best trial (highest validation accuracy among completed ones).
        trials: Every trial, in order.
        study: The underlying ``optuna.Study``, for Optuna's own analysis and plots.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> space = SearchSpace(num_stages=1, kernel_sizes=(3,), depths=(1,), widths=(4, 8))
        >>> result = search(load_dataset("sample"), space=space, n_trials=2, epochs=1,
        ...                 progress=False)
        >>> result.best.val_acc == max(t.val_acc for t in result.trials), len(result.study.trials)
        (True, 2)
        >>> print(result.table().splitlines()[0])
        trial architecture                            params  val acc  ep state
        >>> result.best_config.build(num_classes=10, in_channels=1).num_classes
        10
    """

    best: TrialResult
    trials: list[TrialResult]
    study: Any = field(repr=False)

    @property
    def best_config(self) -> ArchConfig:
        """The best architecture; ``best_config.build(num_classes, in_channels)`` builds it."""
        return self.best.config

    def table(self) -> str:
        """The trials as a fixed-width text table, best first."""
        rows = sorted(
            self.trials, key=lambda t: -t.val_acc if not math.isnan(t.val_acc) else math.inf
        )
        lines = [f"{'trial':>5} {'architecture':36} {'params':>9} {'val acc':>8} {'ep':>3} state"]
        for t in rows:
            acc = f"{t.val_acc:8.4f}" if not math.isnan(t.val_acc) else f"{'-':>8}"
            lines.append(
                f"{t.number + 1:5d} {t.config.describe():36} {t.params:9,d} {acc} {t.epochs:3d} "
                f"{t.state}"
            )
        return "\n".join(lines)


class _PruneOnPlateau(Callback):
    """Report each epoch's validation accuracy to Optuna and stop the run when it says prune."""

    def __init__(self, trial: Any, epochs: int) -> None:
        self.trial = trial
        self.epochs = epochs
        self.pruned = False
        self.best = math.nan

    def on_epoch_end(self, trainer: RunState, epoch: int, metrics: dict[str, float]) -> None:
        accuracy = metrics["val_acc"]
        self.best = accuracy if math.isnan(self.best) else max(self.best, accuracy)
        self.trial.report(accuracy, epoch)
        # Stopping after the last epoch would save nothing and only discard the result.
        if epoch < self.epochs and self.trial.should_prune():
            self.pruned = True
            trainer.should_stop = True


def _holdout(data: InMemoryData, fraction: float, seed: int) -> tuple[InMemoryData, InMemoryData]:
    """Split ``fraction`` of ``data`` off as a validation set (same normalisation stats)."""
    images, labels = tensors_of(data)
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = max(1, round(fraction * n))
    val_idx, train_idx = order[:n_val], order[n_val:]
    if isinstance(data, ImageDataset):
        parts = [
            dataclasses.replace(data, images=data.images[i], labels=data.labels[i], name=f"{name}")
            for i, name in ((train_idx, f"{data.name}[search-train]"), (val_idx, "[search-val]"))
        ]
        return parts[0], parts[1]
    return (images[train_idx], labels[train_idx]), (images[val_idx], labels[val_idx])


def search(
    train: InMemoryData,
    val: InMemoryData | None = None,
    *,
    space: SearchSpace | None = None,
    n_trials: int = 20,
    epochs: int = 3,
    max_params: int | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    fit_kwargs: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Search kernel sizes, depths and widths of a :class:`~visionblocks.nas.StagedCNN`.

    Every trial builds the sampled architecture and trains it for ``epochs`` with
    :func:`~visionblocks.train.fit`; the score is its best validation accuracy.
    Optuna's TPE sampler picks the next architecture from the scores so far, and
    its median pruner stops a run whose accuracy after an epoch is below the
    median of earlier trials at that epoch (from the second epoch on). An
    architecture proposed again reuses its first score instead of training
    again; trials over ``max_params`` are skipped. Both count towards
    ``n_trials``. With a fixed ``seed`` the search on the CPU is reproducible:
    same trials, same scores.

    Args:
        train: Training data: an :class:`~visionblocks.data.ImageDataset` or an
            ``(images, labels)`` pair. Use a subset (e.g. :func:`visionblocks.data.subset`)
            to keep trials short.
        val: Validation data; default: ``val_fraction`` of ``train`` held out.
        space: The choices (default :class:`SearchSpace`: 2,187 architectures).
        n_trials: Number of architectures to try.
        epochs: Training epochs per trial.
        max_params: Skip (without training) architectures with more parameters.
        val_fraction: Share of ``train`` held out when ``val`` is ``None``.
        seed: Seeds the sampler, the weight init and the training runs.
        progress: Print one line per trial.
        fit_kwargs: More arguments for :func:`~visionblocks.train.fit` (``batch_size``,
            ``optimizer``, ``lr``, ``augment``, ...).

    Returns:
        A :class:`SearchResult` with the best architecture and every trial.

    Raises:
        ImportError: Optuna is not installed.
        ValueError: A bad argument.

    Example:
        >>> from visionblocks.data import load_dataset
        >>> data = load_dataset("sample")
        >>> space = SearchSpace(num_stages=2, kernel_sizes=(3,), depths=(1,), widths=(8, 16))
        >>> result = search(data, space=space, n_trials=2, epochs=1, progress=False)
        >>> len(result.trials), result.best.state
        (2, 'complete')
    """
    try:
        import optuna
    except ImportError as error:
        raise ImportError(
            "visionblocks.nas.search needs Optuna; install it with "
            "`pip install visionblocks[nas]` (or `pip install optuna`)."
        ) from error
    if n_trials < 1 or epochs < 1:
        raise ValueError(f"n_trials and epochs must be >= 1; got {n_trials} and {epochs}.")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1); got {val_fraction}.")
    space = space or SearchSpace()
    if val is None:
        train, val = _holdout(train, val_fraction, seed)
    info = describe_data(train)
    options = {"progress": False, "seed": seed, **(fit_kwargs or {})}
    results: list[TrialResult] = []

    def objective(trial: Any) -> float:
        started = time.perf_counter()
        config = space.sample(trial)
        torch.manual_seed(seed + trial.number)  # the same trial gets the same initial weights
        model = config.build(info.num_classes, info.in_channels)
        params = sum(p.numel() for p in model.parameters())
        trial.set_user_attr("params", params)
        for done in results:
            if done.config == config and done.state == "complete":
                # TPE re-proposes good points; a second short run would only re-measure noise.
                results.append(
                    TrialResult(trial.number, config, params, done.val_acc, 0, "repeat", 0.0)
                )
                _report(results[-1], n_trials, progress)
                return done.val_acc
        if max_params is not None and params > max_params:
            results.append(TrialResult(trial.number, config, params, math.nan, 0, "too big", 0.0))
            _report(results[-1], n_trials, progress)
            raise optuna.TrialPruned(f"{params:,} parameters > max_params={max_params:,}")
        monitor = _PruneOnPlateau(trial, epochs)
        history = fit(model, train, val, epochs=epochs, callbacks=[monitor], **options)
        state = "pruned" if monitor.pruned else "complete"
        result = TrialResult(
            trial.number, config, params, monitor.best, len(history), state,
            time.perf_counter() - started,
        )  # fmt: skip
        results.append(result)
        _report(result, n_trials, progress)
        if monitor.pruned:
            raise optuna.TrialPruned()
        return monitor.best

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial instead
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        # No pruning before 3 trials have finished, nor on the first epoch alone: one epoch's
        # accuracy depends too much on the initial weights (seen in the docs' example run).
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    )
    study.optimize(objective, n_trials=n_trials)
    complete = [t for t in results if t.state == "complete"]
    if not complete:
        raise ValueError(
            "no trial completed (all pruned or over max_params); raise max_params or n_trials."
        )
    best = max(complete, key=lambda t: t.val_acc)
    return SearchResult(best=best, trials=results, study=study)


def _report(result: TrialResult, n_trials: int, progress: bool) -> None:
    if not progress:
        return
    acc = f"{result.val_acc:.4f}" if not math.isnan(result.val_acc) else "-"
    print(
        f"trial {result.number + 1}/{n_trials}: {result.config.describe()}  "
        f"{result.params:,} params  val acc {acc}  {result.state} after {result.epochs} "
        f"epoch(s), {result.seconds:.0f} s",
        flush=True,
    )
