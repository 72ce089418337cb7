"""Safetensors model files and weights: written with the card, read with no pickle at all."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import visionblocks as vb
from visionblocks.cli import main
from visionblocks.model_file import (
    FORMAT,
    CheckpointError,
    ModelCard,
    card_in,
    read_model_file,
    read_weights,
    write_model_file,
)

TINY = {"in_channels": 1, "image_size": 28, "widths": (4, 8, 8), "hidden": 16}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    """A tiny simple_cnn after one epoch on 400 sample images: its card has classes and stats."""
    train = vb.data.subset(vb.load_dataset("sample"), 0.2)  # 400 images
    model = vb.simple_cnn(num_classes=len(train.classes), **TINY)
    vb.fit(model, train, epochs=1, batch_size=100, progress=False, seed=0)
    return model


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa
    )


def _plain(card: ModelCard | None) -> object:
    """The card as JSON data: a safetensors file's metadata has lists where tuples were."""
    return None if card is None else json.loads(json.dumps(card.to_dict()))


def test_save_checkpoint_safetensors_rebuilds_bit_identical_with_its_card(
    trained: nn.Module, tmp_path: Path
) -> None:
    path = vb.save_checkpoint(tmp_path / "m.safetensors", trained)
    with safe_open(str(path), framework="pt") as file:  # a real safetensors file
        metadata = file.metadata()
    assert metadata["format"] == FORMAT
    assert json.loads(metadata["card"])["builder"] == "simple_cnn"
    model = vb.load_model(path)
    assert _same_weights(model, trained)
    card, original = vb.model_card(model), vb.model_card(trained)
    assert card is not None
    assert original is not None
    assert card.classes == original.classes
    assert len(card.classes or ()) == 10
    assert card.stats == original.stats
    assert card.stats is not None
    assert card.image_shape == original.image_shape == (1, 28, 28)
    assert card.training == original.training
    assert "epochs" in card.training
    assert _plain(card) == _plain(original)
    assert model.training is False


def test_load_model_of_safetensors_unpickles_nothing(
    trained: nn.Module, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    safe = vb.save_checkpoint(tmp_path / "m.safetensors", trained)
    torch_file = vb.save_checkpoint(tmp_path / "m.pt", trained)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("pickle was used")

    monkeypatch.setattr(pickle, "Unpickler", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    assert _same_weights(vb.load_model(safe), trained)
    # Control: the same patch stops the torch file, so it would catch a pickle on the path.
    with pytest.raises(AssertionError, match="pickle was used"):
        vb.load_model(torch_file)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_weights_keep_their_dtype_and_bits(dtype: torch.dtype, tmp_path: Path) -> None:
    model = vb.resnet20(num_classes=3).to(dtype)
    path = vb.save_checkpoint(tmp_path / "m.safetensors", model)
    saved = read_model_file(path)
    assert saved.card.builder == "resnet20"
    for key, value in model.state_dict().items():
        assert saved.state_dict[key].dtype == value.dtype
        assert torch.equal(saved.state_dict[key], value), key


class _Tied(nn.Module):
    """Two layers sharing one weight, and a non-contiguous buffer: what safetensors refuses."""

    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(4, 4, bias=False)
        self.decode = nn.Linear(4, 4, bias=False)
        self.decode.weight = self.encode.weight
        self.register_buffer("table", torch.arange(12.0).reshape(3, 4).t())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def test_shared_and_non_contiguous_tensors_are_written_whole(tmp_path: Path) -> None:
    model = _Tied()
    assert not model.table.is_contiguous()
    path = write_model_file(tmp_path / "tied.safetensors", model, ModelCard())
    saved = read_model_file(path)
    assert set(saved.state_dict) == {"encode.weight", "decode.weight", "table"}
    assert torch.equal(saved.state_dict["table"], model.table)
    fresh = _Tied()
    vb.model_file.load_state_checked(fresh, saved.state_dict)  # strict: every key is there
    assert fresh.decode.weight is fresh.encode.weight  # still tied after loading
    assert torch.equal(fresh.encode.weight, model.encode.weight)


def test_a_plain_safetensors_state_dict_reads_as_weights_without_a_card(tmp_path: Path) -> None:
    source = vb.resnet20(num_classes=10)
    path = tmp_path / "model.safetensors"  # as Hugging Face writes it
    save_file(source.state_dict(), path, metadata={"format": "pt"})
    raw = read_weights(path)
    assert card_in(raw) is None
    assert torch.equal(raw["head.weight"], source.state_dict()["head.weight"])
    report = vb.load_weights(vb.resnet20(num_classes=3), path)
    assert report.reinitialized == ["head.weight", "head.bias"]
    with pytest.raises(CheckpointError, match=r"not a visionblocks checkpoint.*load_weights"):
        read_model_file(path)


def test_safetensors_is_recognised_by_its_bytes_and_hash_checked(tmp_path: Path) -> None:
    model = vb.resnet20(num_classes=4)
    path = vb.save_checkpoint(tmp_path / "m.safetensors", model)
    renamed = path.rename(tmp_path / "weights.bin")  # no telling suffix
    import hashlib

    digest = hashlib.sha256(renamed.read_bytes()).hexdigest()
    raw = read_weights(renamed, sha256=digest[:12])
    card = card_in(raw)
    assert card is not None
    assert (card.builder, card.num_classes) == ("resnet20", 4)
    with pytest.raises(ValueError, match="does not start with the expected"):
        read_weights(renamed, sha256="0" * 12)
    assert _same_weights(vb.load_model(renamed), model)


def test_pretrained_reads_a_safetensors_model_file(tmp_path: Path) -> None:
    source = vb.resnet20(num_classes=10)
    path = vb.save_checkpoint(tmp_path / "source.safetensors", source)
    model = vb.pretrained("resnet20", num_classes=3, weights=path)
    assert torch.equal(model.state_dict()["stem.0.weight"], source.state_dict()["stem.0.weight"])


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"PK\x03\x04 a zip, not safetensors", "cannot be read as a safetensors file"),
        ((40).to_bytes(8, "little") + b'{"a": {"dtype": "F32"', "cannot be read as a safetensors"),
    ],
    ids=["empty", "not-safetensors", "truncated-header"],
)
def test_unreadable_safetensors_is_one_line_naming_the_file(
    content: bytes, match: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    for read in (read_weights, read_model_file, vb.load_model):
        with pytest.raises(CheckpointError, match=match) as err:
            read(path)
        assert "bad.safetensors" in str(err.value)
        assert "\n" not in str(err.value)


def test_a_torch_file_named_safetensors_is_never_unpickled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.safetensors"
    torch.save({"weight": torch.zeros(2)}, path)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.load was called")

    monkeypatch.setattr(torch, "load", refuse)
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*not safetensors"):
        read_weights(path)


def test_card_metadata_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(1)}, path, metadata={"format": FORMAT, "version": "2",
                                                     "card": "{not json"})  # fmt: skip
    with pytest.raises(CheckpointError, match=r"m\.safetensors.*card.*not valid JSON"):
        read_model_file(path)
    save_file({"w": torch.zeros(1)}, path, metadata={"format": FORMAT, "version": "9",
                                                     "card": "{}"})  # fmt: skip
    with pytest.raises(CheckpointError, match="format version 9"):
        read_model_file(path)


def test_missing_package_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = vb.save_checkpoint(tmp_path / "m.safetensors", vb.resnet20())
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import now raises ImportError
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match=r"m\.safetensors.*visionblocks\[safetensors\]"):
        read_model_file(path)
    with pytest.raises(ImportError, match=r"visionblocks\[safetensors\]"):
        vb.save_checkpoint(tmp_path / "n.safetensors", vb.resnet20())
    assert not list(tmp_path.glob("*n.safetensors*"))


def test_a_training_state_is_refused_as_safetensors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"training state.*stays a torch file.*\*\.pt"):
        write_model_file(tmp_path / "last.safetensors", vb.resnet20(), ModelCard(),
                         state={"epoch": 1})  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_writes_are_atomic_and_sweep_stale_temporaries(tmp_path: Path) -> None:
    stale = tmp_path / ".m.safetensors.999999999.k3j2.tmp"  # its process is gone
    stale.write_bytes(b"half a file")
    path = vb.save_checkpoint(tmp_path / "m.safetensors", vb.resnet20(num_classes=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    before = path.read_bytes()
    bad = vb.resnet20()
    bad.register_buffer("note", torch.zeros(1).to_sparse())  # safetensors refuses sparse
    with pytest.raises(ValueError, match="'note' is a sparse"):
        vb.save_checkpoint(path, bad)
    assert path.read_bytes() == before  # the previous file is intact, and no temporary left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


@pytest.mark.parametrize("fmt", [None, "safetensors"])
def test_export_writes_a_safetensors_model_file(
    fmt: str | None, trained: nn.Module, tmp_path: Path
) -> None:
    result = vb.export(trained, tmp_path / "m.safetensors", format=fmt, batch_size=3)
    assert result.format == "safetensors"
    with safe_open(str(result.path), framework="pt") as file:
        assert file.metadata()["format"] == FORMAT
    # The weights are bit for bit the same; the forward of the rebuilt copy may take
    # another CPU kernel path (memory alignment), hence a difference at float32 rounding.
    assert result.max_abs_diff < 1e-6
    assert _same_weights(vb.load_model(result.path), trained)
    assert _plain(vb.model_card(vb.load_model(result.path))) == _plain(vb.model_card(trained))
    with pytest.raises(ValueError, match=r"\*\.safetensors.*name it '.*m\.safetensors'"):
        vb.export(trained, tmp_path / "m.st", format="safetensors")


def test_export_refuses_a_model_load_model_could_not_rebuild(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no model card naming a registered builder"):
        vb.export(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten()), tmp_path / "m.safetensors",
                  input_shape=(3, 8, 8))  # fmt: skip
    assert not list(tmp_path.iterdir())


def test_cli_export_safetensors_then_predict_and_eval_read_it(
    trained: nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = vb.save_checkpoint(tmp_path / "model.pt", trained)
    assert main(["export", str(checkpoint), "--format", "safetensors"]) == 0
    exported = tmp_path / "model.safetensors"
    assert "(safetensors)" in capsys.readouterr().out
    assert _same_weights(vb.load_model(exported), trained)
    images = tmp_path / "images"
    images.mkdir()
    test = vb.load_dataset("sample", "test")
    for i in range(3):
        Image.fromarray(test.images[i, 0].numpy()).save(images / f"{i}.png")
    outputs = []
    for model_file in (checkpoint, exported):
        assert main(["predict", str(model_file), str(images)]) == 0
        assert main(["eval", str(model_file), "--dataset", "sample", "--limit", "200"]) == 0
        outputs.append(capsys.readouterr().out.replace(str(model_file), "MODEL"))
    assert outputs[0] == outputs[1]  # the same predictions and accuracy from either file
