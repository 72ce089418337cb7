"""The class-balanced sampler: class frequencies, seeded epochs, DDP shares, every loader."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset
from torchvision.io import write_png

from visionblocks.data import (
    BalancedSampler,
    DeviceLoader,
    LoaderOptions,
    StreamLoader,
    dataset_labels,
    load_dataset,
)
from visionblocks.data._sampler import epoch_order
from visionblocks.train._data import make_batches

# Five classes from 2,000 images down to 1, and class 5 absent (label 6 exists): the
# draw must give each of the five present classes a fifth of the draws.
COUNTS = {0: 2000, 1: 300, 2: 40, 3: 5, 4: 1, 6: 20}
LABELS = torch.cat([torch.full((n,), c) for c, n in COUNTS.items()])
PRESENT = sorted(COUNTS)


def draws(epochs: int, seed: int = 0, labels: torch.Tensor = LABELS) -> torch.Tensor:
    """The indices of ``epochs`` balanced epochs, one after the other."""
    return torch.cat([
        epoch_order(len(labels), seed=seed, epoch=e, shuffle=True, labels=labels)
        for e in range(epochs)
    ])  # fmt: skip


def test_every_present_class_is_drawn_equally_often() -> None:
    drawn = draws(20)  # 47,320 draws
    freq = torch.bincount(LABELS[drawn], minlength=7).double() / len(drawn)
    # Catches a draw proportional to class size (class 0 would take 85%), one that gives
    # the absent class 5 a share (each present class would get 1/7), or a biased pick.
    # 6 classes: 1/6 each; the binomial sd of a share here is 0.0017, the tolerance 6x it.
    for c in PRESENT:
        assert freq[c].item() == pytest.approx(1 / 6, abs=0.01), (c, freq.tolist())
    assert freq[5] == 0


def test_the_images_of_a_class_are_drawn_uniformly() -> None:
    drawn = draws(20)
    per_image = torch.bincount(drawn, minlength=len(LABELS)).double()
    # Catches a biased pick within a class (e.g. always its first image, or an offset that
    # never reaches the last image): each of class 2's 40 images gets ~1/40 of its draws.
    members = (LABELS == 2).nonzero().flatten()
    share = per_image[members] / per_image[members].sum()
    assert bool((share > 0).all())
    assert share.max().item() < 2 / 40, share.tolist()
    assert share.min().item() > 0.5 / 40, share.tolist()
    lone = (LABELS == 4).nonzero().flatten()  # class 4's one image takes all its draws
    assert per_image[lone].item() / len(drawn) == pytest.approx(1 / 6, abs=0.01)


def test_an_epoch_is_the_dataset_long_seeded_and_replayed_exactly() -> None:
    one = epoch_order(len(LABELS), seed=3, epoch=2, shuffle=True, labels=LABELS)
    assert len(one) == len(LABELS)
    # Catches a draw from a generator that lives across epochs (a resumed run would draw
    # other images) or from the global RNG.
    torch.manual_seed(123)
    assert torch.equal(one, epoch_order(len(LABELS), seed=3, epoch=2, shuffle=True, labels=LABELS))
    assert not torch.equal(
        one, epoch_order(len(LABELS), seed=3, epoch=3, shuffle=True, labels=LABELS)
    )
    assert not torch.equal(
        one, epoch_order(len(LABELS), seed=4, epoch=2, shuffle=True, labels=LABELS)
    )


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_take_disjoint_shares_of_one_draw(world_size: int) -> None:
    size = len(LABELS)
    whole = epoch_order(size, seed=1, epoch=4, shuffle=True, labels=LABELS)
    shares = [
        epoch_order(
            size, seed=1, epoch=4, shuffle=True, labels=LABELS, rank=r, world_size=world_size
        )
        for r in range(world_size)
    ]
    # Catches ranks that draw on their own (seeded by rank: overlapping, unequal draws) or
    # that take the same share: the shares interleave back into the single-process draw.
    usable = size - size % world_size
    assert {len(s) for s in shares} == {size // world_size}
    for r, share in enumerate(shares):
        assert torch.equal(share, whole[:usable][r::world_size])
    samplers = [
        BalancedSampler(LABELS, seed=1, rank=r, world_size=world_size) for r in range(world_size)
    ]
    for r, sampler in enumerate(samplers):
        sampler.set_epoch(4)
        assert list(sampler) == shares[r].tolist()
        assert len(sampler) == size // world_size


def test_the_device_loader_draws_balanced_batches() -> None:
    images = torch.randint(0, 256, (len(LABELS), 1, 4, 4), dtype=torch.uint8)
    loader = DeviceLoader((images, LABELS), batch_size=256, sampler="balanced", seed=5)
    loader.set_epoch(1)
    seen = [(x, y) for x, y in loader]
    labels = torch.cat([y for _, y in seen])
    assert len(labels) == len(LABELS)
    assert len(loader) == len(seen)
    # Catches a loader that ignores the option (class 0 would be 85% of the batches).
    assert (labels == 0).double().mean().item() < 0.25
    # The batches hold the images of the drawn indices, with their labels.
    order = loader.epoch_indices(1)
    assert torch.equal(labels, LABELS[order])
    plain = DeviceLoader((images, LABELS), batch_size=256, seed=5, shuffle=False, augment=None)
    first = seen[0][0]
    assert torch.equal(first, plain.normalize(images[order[:256]]))


@pytest.fixture(scope="module")
def imbalanced_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real Fashion-MNIST PNGs: 24 of class 0, 4 of class 1, 2 of class 2."""
    root = tmp_path_factory.mktemp("imbalanced")
    sample = load_dataset("sample")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torchvision.io's encoders
        for c, n in ((0, 24), (1, 4), (2, 2)):
            (root / f"class{c}").mkdir()
            for i in (sample.labels == c).nonzero().flatten()[:n].tolist():
                write_png(sample.images[i], str(root / f"class{c}" / f"{i:05d}.png"))
    return root


def test_a_streamed_folder_gives_the_in_memory_balanced_batches(imbalanced_folder: Path) -> None:
    memory = load_dataset(imbalanced_folder, in_memory=True)
    stream = load_dataset(imbalanced_folder, in_memory=False)
    options = LoaderOptions(batch_size=8, sampler="balanced", augment="standard", seed=2)
    streamed = StreamLoader(stream, options, num_workers=0)
    held = DeviceLoader(memory, options)
    for epoch in (1, 2):
        streamed.set_epoch(epoch)
        held.set_epoch(epoch)
        pairs = list(zip(streamed, held, strict=True))
        # Catches a StreamLoader that ignores the sampler or draws its own order.
        for (xs, ys), (xm, ym) in pairs:
            assert torch.equal(ys, ym)
            assert torch.equal(xs, xm)
        labels = torch.cat([y for (_, y), _ in pairs])
        assert len(labels) == 30
        assert (labels == 0).sum() < 24


class Targets(Dataset[tuple[torch.Tensor, int]]):
    """A user's Dataset that says its classes in ``targets``, as torchvision's do."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.targets = labels.tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 2, 2), float(i) / len(self.targets)), self.targets[i]


class Unlabelled(Targets):
    """The same without ``targets``: its classes are known only by loading every item."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__(labels)
        self.hidden = self.targets
        del self.targets

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(1, 2, 2), self.hidden[i]


@pytest.mark.parametrize("kind", ["targets", "tensors"])
def test_fit_draws_a_users_dataset_balanced_and_seeded(kind: str) -> None:
    labels = LABELS[::4]  # 592 items: 500 of class 0, ..., class 4 absent
    data: Dataset[tuple[torch.Tensor, int]] = (
        Targets(labels)
        if kind == "targets"
        else TensorDataset(torch.rand(len(labels), 1, 2, 2), labels)
    )
    options = LoaderOptions(batch_size=64, sampler="balanced", seed=9, augment=None)
    batches = make_batches(data, options, train=True)
    batches.set_epoch(1)
    first = torch.cat([y.cpu() for _, y in batches])
    batches.set_epoch(1)
    again = torch.cat([y.cpu() for _, y in batches])
    batches.set_epoch(2)
    other = torch.cat([y.cpu() for _, y in batches])
    # Catches a Dataset trained with a plain shuffle (class 0 would be 84%), an epoch that
    # does not replay (resume would diverge) and epochs that never change.
    assert (first == 0).double().mean().item() < 0.35
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    sampler = BalancedSampler(labels, seed=9)
    sampler.set_epoch(1)
    assert torch.equal(first, labels[list(sampler)][: len(first)])


def test_evaluation_batches_never_use_the_sampler() -> None:
    images = torch.randint(0, 256, (len(LABELS), 1, 4, 4), dtype=torch.uint8)
    options = LoaderOptions(batch_size=500, sampler="balanced")
    labels = torch.cat([y for _, y in make_batches((images, LABELS), options, train=False)])
    # Catches a validation that is drawn balanced: it must count every image once, in order.
    assert torch.equal(labels, LABELS)


def test_dataset_labels_reads_what_is_there() -> None:
    assert torch.equal(dataset_labels(Targets(LABELS[:5])), LABELS[:5])  # type: ignore[arg-type]
    assert dataset_labels(Unlabelled(LABELS[:5])) is None
    assert dataset_labels(TensorDataset(torch.zeros(3))) is None


def test_bad_uses_are_refused_with_the_fix() -> None:
    with pytest.raises(
        ValueError, match="sampler must be None or one of 'balanced'; got 'balance'"
    ):
        LoaderOptions(batch_size=8, sampler="balance")
    with pytest.raises(ValueError, match="drop shuffle=False or the sampler"):
        LoaderOptions(batch_size=8, sampler="balanced", shuffle=False)
    options = LoaderOptions(batch_size=8, sampler="balanced")
    with pytest.raises(ValueError, match=r"give it a \.targets attribute"):
        make_batches(Unlabelled(LABELS[:40]), options, train=True)
    loader = DataLoader(TensorDataset(torch.zeros(4, 1, 2, 2), torch.zeros(4)), batch_size=2)
    with pytest.raises(ValueError, match="a DataLoader has its own sampler"):
        make_batches(loader, options, train=True)
    with pytest.raises(ValueError, match=r"multi-label, shape \(4, 2\).*class_weight="):
        BalancedSampler(torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        BalancedSampler(torch.zeros(4, 2, 1))
    with pytest.raises(ValueError, match="class indices >= 0"):
        BalancedSampler([0, -1])
