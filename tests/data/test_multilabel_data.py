"""Multi-label data: multi-hot labels in memory, in loaders, in labels files, in MixUp/CutMix."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from visionblocks.data import (
    CutMix,
    DeviceLoader,
    ImageDataset,
    MixUp,
    StreamingDataset,
    StreamLoader,
    check_multi_hot,
    label_task,
    load_dataset,
    multi_hot,
    subset,
)


def tagged(n: int = 12, k: int = 4) -> ImageDataset:
    """Image ``i`` is filled with the value ``i``; its labels are the bits of ``i`` (mod 2^k)."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 4, 4).clone()
    bits = (torch.arange(n)[:, None] >> torch.arange(k)) & 1  # (N, K) 0/1
    return ImageDataset(images, bits.bool(), [f"bit{b}" for b in range(k)])


def test_image_dataset_keeps_multi_hot_labels_as_float() -> None:
    data = tagged()
    assert data.task == "multilabel"
    assert label_task(data.labels) == "multilabel"
    assert data.labels.dtype == torch.float32
    assert data.labels.shape == (12, 4)
    assert data[5][1].tolist() == [1.0, 0.0, 1.0, 0.0]  # 5 = 0b0101
    with pytest.raises(ValueError, match="multi-hot over 4 labels but 3 classes"):
        ImageDataset(data.images, data.labels, ["a", "b", "c"])
    with pytest.raises(ValueError, match=r"0 or 1 for each label; got values such as \[2\.0\]"):
        check_multi_hot(torch.tensor([[0, 2]]))


def test_device_loader_yields_each_image_with_its_own_row() -> None:
    data = tagged(20)
    loader = DeviceLoader(data, batch_size=6, seed=3, augment=None, mean=(0.0,), std=(1 / 255,))
    seen = 0
    for x, y in loader:
        index = x[:, 0, 0, 0].round().long()  # the pixel value is the image's index
        # Catches labels drawn in another order than the images, or cast to int64.
        assert y.dtype == torch.float32
        assert y.shape == (len(x), 4)
        assert torch.equal(y, data.labels[index])
        seen += len(x)
    assert seen == 20


def test_the_balanced_sampler_refuses_multi_hot_labels() -> None:
    with pytest.raises(ValueError, match="draws by class, one per image"):
        DeviceLoader(tagged(), batch_size=4, sampler="balanced")


def test_subset_of_multi_label_data_keeps_rows_with_their_images() -> None:
    data = tagged(40)
    part = subset(data, 0.25, seed=1)
    assert len(part) == 10
    index = part.images[:, 0, 0, 0].long()
    assert torch.equal(part.labels, data.labels[index])


def test_streamed_and_in_memory_multi_label_batches_agree(tmp_path: Path) -> None:
    data = tagged(10)
    files = []
    for i, image in enumerate(data.images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image[0].numpy(), mode="L").save(files[-1])
    stream = StreamingDataset(files, data.labels, data.classes, channels=1, image_size=(4, 4))
    assert stream[3][1].tolist() == data.labels[3].tolist()
    options = {"batch_size": 4, "seed": 0, "augment": None, "mean": (0.5,), "std": (0.5,)}
    streamed = list(StreamLoader(stream, num_workers=0, **options))
    in_memory = list(DeviceLoader(data, **options))
    for (xs, ys), (xm, ym) in zip(streamed, in_memory, strict=True):
        assert torch.equal(xs, xm)
        assert torch.equal(ys, ym)
        assert ys.shape[1] == 4


# --------------------------------------------------------------------------- labels files


def write_images(folder: Path, count: int) -> None:
    for i in range(count):
        Image.new("L", (4, 4), 6 * i).save(folder / f"{i}.png")


def test_a_tags_column_makes_a_multi_label_file(tmp_path: Path) -> None:
    write_images(tmp_path, 5)
    rows = ["image_name,tags", "0,haze primary", "1,primary", "2,", "3,water haze haze",
            "4,clear"]  # fmt: skip
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(tmp_path / "train.csv", image_suffix=".png", in_memory=True)
    assert data.classes == ["clear", "haze", "primary", "water"]
    # Catches a missing row, an empty field refused, a repeated tag counted twice.
    assert data.labels.tolist() == [
        [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0],
    ]  # fmt: skip
    streamed = load_dataset(tmp_path / "train.csv", image_suffix=".png", in_memory=False)
    assert torch.equal(streamed.labels, data.labels)
    assert int(data.images[3, 0, 0, 0]) == 18  # rows stay with their images


def test_labels_with_spaces_are_separated_by_bars(tmp_path: Path) -> None:
    write_images(tmp_path, 2)
    (tmp_path / "t.csv").write_text("file,labels\n0.png,Ankle boot|Bag\n1.png,Bag\n")
    data = load_dataset(tmp_path / "t.csv", in_memory=True)
    assert data.classes == ["Ankle boot", "Bag"]
    assert data.labels.tolist() == [[1, 1], [0, 1]]


def test_a_multi_label_split_is_disjoint_and_trains_every_label(tmp_path: Path) -> None:
    write_images(tmp_path, 40)
    rows = ["id,tags"] + [f"{i},{'a' if i % 2 else 'b'}{' c' if i % 5 == 0 else ''}"
                          for i in range(40)]  # fmt: skip
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    kwargs = {"image_suffix": ".png", "val_fraction": 0.25, "seed": 4, "in_memory": True}
    train = load_dataset(tmp_path / "t.csv", "train", **kwargs)
    val = load_dataset(tmp_path / "t.csv", "val", **kwargs)
    assert (len(train), len(val)) == (30, 10)
    pixels = {int(v) for v in train.images[:, 0, 0, 0]} | {int(v) for v in val.images[:, 0, 0, 0]}
    assert len(pixels) == 40  # disjoint, and together every row
    assert bool((train.labels.sum(0) > 0).all())


def split_outcome(labels: Path, seed: int) -> str:
    """The error of the ``val_fraction=0.3`` split with ``seed``, else its warnings."""
    kwargs = {"image_suffix": ".png", "val_fraction": 0.3, "seed": seed, "in_memory": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_dataset(labels, "train", **kwargs)
        except ValueError as err:
            return str(err)
    return " ".join(str(w.message) for w in caught)


def test_a_split_that_holds_out_a_label_s_only_images_is_refused(tmp_path: Path) -> None:
    write_images(tmp_path, 10)
    rows = ["id,tags"] + [f"{i},{'rare' if i == 0 else 'common'}" for i in range(10)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    outcomes = [split_outcome(tmp_path / "t.csv", seed) for seed in range(12)]
    # Its one image held out: refused (training would never see the label).
    refused = [o for o in outcomes if "holds out every image of the label 'rare'" in o]
    # Its one image trained on: validation has none of it, which is said.
    warned = [o for o in outcomes if "holds out no image of the label(s) 'rare'" in o]
    assert refused
    assert warned
    assert len(refused) + len(warned) == len(outcomes)


def test_a_labels_file_without_a_label_column_names_both_layouts(tmp_path: Path) -> None:
    write_images(tmp_path, 2)
    (tmp_path / "t.csv").write_text("id,kind\n0,a\n1,b\n")
    with pytest.raises(ValueError, match="named label or class, or labels or tags for several"):
        load_dataset(tmp_path / "t.csv", image_suffix=".png")


# --------------------------------------------------------------------------- MixUp / CutMix


def test_mixup_mixes_multi_hot_rows_as_a_convex_combination() -> None:
    x = torch.zeros(6, 1, 1, 2)
    x[:, 0, 0, 0] = torch.arange(6.0)  # two pixels that tell the images apart after mixing
    x[:, 0, 0, 1] = torch.arange(6.0) ** 2
    y = multi_hot([[0, 1], [1], [], [0, 2], [2], [0, 1, 2]], 3)
    xm, ym = MixUp(alpha=1.0)(x, y, 3, generator=torch.Generator().manual_seed(0))
    # Recover each image's partner and share from the mixed pixels: x = lam * i + (1 - lam) * j.
    lam_and_partner = []
    for i in range(6):
        for j in range(6):
            lam = (xm[i, 0, 0, 0] - j) / (i - j) if i != j else None
            if lam is not None and torch.allclose(xm[i], lam * x[i] + (1 - lam) * x[j]):
                lam_and_partner.append((float(lam), j))
                break
        else:
            assert torch.equal(xm[i], x[i])  # its own partner
            lam_and_partner.append((1.0, i))
    for i, (lam, j) in enumerate(lam_and_partner):
        # Catches a one-hot conversion (argmax of the multi-hot row), rows normalised to sum 1.
        assert ym[i].tolist() == pytest.approx((lam * y[i] + (1 - lam) * y[j]).tolist(), abs=1e-6)
    both = (y * y[[j for _, j in lam_and_partner]]).bool()
    assert bool((ym[both] > 1 - 1e-6).all())  # a label both images have stays 1


def test_cutmix_mixes_multi_hot_rows_by_the_pasted_area() -> None:
    x = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 16, 16).clone()
    y = (torch.rand(8, 5, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    xm, ym = CutMix(alpha=1.0)(x, y, 5, generator=torch.Generator().manual_seed(2))
    for i in range(8):
        pasted = xm[i] != i
        share = float(pasted.float().mean())  # of the image taken from the partner
        partner = int(xm[i][pasted][0]) if bool(pasted.any()) else i
        expected = (1 - share) * y[i] + share * y[partner]
        assert ym[i].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
