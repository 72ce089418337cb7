"""The CNN lab's way of training, timed to a target accuracy (shared by the speed benchmarks).

The lab's pipeline, as its notebooks write it: a ``Dataset`` that turns each uint8
array into a PIL image (what ``torchvision.datasets.FashionMNIST``/``CIFAR10`` do),
``RandomCrop(S, padding=4)`` + ``RandomHorizontalFlip()`` + ``ToTensor()`` +
``Normalize(mean, std)`` in a ``DataLoader(batch_size=128, shuffle=True, num_workers=2)``,
fp32, ``Adam(lr=1e-3)``, a hand-written loop, and the full test set evaluated after
every epoch.

Not part of the package: ``benchmarks/`` is put on ``sys.path`` by Python when one of
its scripts runs, so ``import _lab_baseline`` finds this file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torchvision.transforms as T
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from visionblocks.data import ImageDataset

LAB_BATCH_SIZE = 128
LAB_WORKERS = 2


@dataclass
class Run:
    """One side of a time-to-accuracy comparison.

    ``evals`` holds ``(epoch, seconds since the start, test accuracy)`` after every epoch;
    ``seconds`` counts training and the per-epoch evaluations, from the creation of the
    loaders (the dataset already in memory on both sides) to the end of the last epoch.
    """

    name: str
    evals: list[tuple[int, float, float]] = field(default_factory=list)
    seconds: float = 0.0
    stopped: str = ""
    images_per_second: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def time_to(self, target: float) -> float | None:
        """Seconds until the test accuracy first reached ``target`` (``None``: never)."""
        for _, seconds, accuracy in self.evals:
            if accuracy >= target:
                return seconds
        return None

    @property
    def best(self) -> float:
        """The best test accuracy seen (0 before the first evaluation)."""
        return max((a for _, _, a in self.evals), default=0.0)


class PilDataset(Dataset[tuple[torch.Tensor, int]]):
    """What torchvision.datasets.CIFAR10/FashionMNIST do per item: array -> PIL -> transform."""

    def __init__(self, ds: ImageDataset, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        images = ds.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C)
        self.data = images[..., 0] if images.shape[-1] == 1 else images
        self.labels = ds.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.data[index])), self.labels[index]


def lab_loaders(
    train: ImageDataset, test: ImageDataset, *, seed: int = 0
) -> tuple[DataLoader[tuple[torch.Tensor, int]], DataLoader[tuple[torch.Tensor, int]]]:
    """The lab's train and test ``DataLoader`` s (normalized with the training set's stats)."""
    size = train.images.shape[-1]
    normalize = T.Normalize(train.mean, train.std)
    train_tf = T.Compose(
        [T.RandomCrop(size, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize]
    )
    test_tf = T.Compose([T.ToTensor(), normalize])
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(
        PilDataset(train, train_tf), batch_size=LAB_BATCH_SIZE, shuffle=True,
        num_workers=LAB_WORKERS, generator=generator,
    )  # fmt: skip
    test_loader = DataLoader(
        PilDataset(test, test_tf), batch_size=1000, shuffle=False, num_workers=LAB_WORKERS
    )
    return train_loader, test_loader


@torch.no_grad()
def lab_evaluate(
    model: nn.Module, loader: DataLoader[tuple[torch.Tensor, int]], device: torch.device
) -> float:
    """Test accuracy, the lab's way: fp32, batch by batch."""
    model.eval()
    correct = total = 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct += int((model(x).argmax(dim=1) == y).sum())
        total += len(y)
    model.train()
    return correct / total


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lab_time_to_accuracy(
    name: str,
    model: nn.Module,
    train: ImageDataset,
    test: ImageDataset,
    *,
    targets: Sequence[float],
    device: torch.device,
    max_epochs: int,
    max_seconds: float,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> Run:
    """Train ``model`` the lab's way until every target is reached or the budget runs out.

    The budget is checked after every batch too, so a slow epoch cannot overshoot it;
    a run cut mid-epoch gets one more (untimed) evaluation, reported as ``extra["final"]``.
    """
    torch.manual_seed(seed)
    model.to(device)
    run = Run(name)
    started = time.perf_counter()
    train_loader, test_loader = lab_loaders(train, test, seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    trained_images, train_seconds = 0, 0.0
    cut = False
    for epoch in range(1, max_epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            trained_images += len(y)
            if time.perf_counter() - started > max_seconds:
                cut = True
                break
        _sync(device)
        train_seconds += time.perf_counter() - epoch_start
        if epoch == 1:
            run.extra["first_epoch_train_seconds"] = train_seconds
        if cut:
            run.seconds = time.perf_counter() - started
            run.stopped = f"budget of {max_seconds:.0f} s ran out during epoch {epoch}"
            run.extra["final"] = lab_evaluate(model, test_loader, device)
            break
        accuracy = lab_evaluate(model, test_loader, device)
        elapsed = time.perf_counter() - started
        run.evals.append((epoch, elapsed, accuracy))
        log(f"  {name}: epoch {epoch} test acc {accuracy:.2%} at {elapsed:.0f} s")
        if all(accuracy >= t or run.time_to(t) is not None for t in targets):
            run.seconds, run.stopped = elapsed, "all targets reached"
            break
        if elapsed > max_seconds:
            run.seconds, run.stopped = elapsed, f"budget of {max_seconds:.0f} s ran out"
            break
    else:
        run.seconds, run.stopped = time.perf_counter() - started, f"{max_epochs} epochs done"
    run.images_per_second = trained_images / max(train_seconds, 1e-9)
    return run
