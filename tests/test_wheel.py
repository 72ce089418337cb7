"""The wheel builds, installs into a fresh venv and works there, with the sample data.

The fresh environment gets the wheel with ``--no-deps``; torch, torchvision, numpy and
tqdm are made importable in it by a ``.pth`` file that points at this interpreter's
site-packages. That keeps the test offline and avoids a 5 GB reinstall of torch, while
still proving what matters here: the package's own files (code, ``py.typed``, the
embedded Fashion-MNIST sample) are in the wheel and are what gets imported. A ``.pth``
file only appends directories to ``sys.path``; the ``.pth`` files *inside* the appended
directory (such as this checkout's editable install) are not run, so the editable
``visionblocks`` cannot shadow the installed one -- which the test checks as well.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import numpy
import pytest
import torch
import torchvision
import tqdm

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import pathlib, sys
import visionblocks
from visionblocks import fit, load_dataset, resnet_cifar
package = pathlib.Path(visionblocks.__file__).parent
assert package.is_relative_to(pathlib.Path(sys.prefix)), package
assert "site-packages" in str(package), package
assert (package / "py.typed").is_file()
train = load_dataset("sample")
assert len(train) == 2000 and train.image_shape == (1, 28, 28), train
assert len(load_dataset("sample", "test")) == 1000
assert sum(p.numel() for p in resnet_cifar(depth=20).parameters()) == 272474
print("ok", visionblocks.__version__, package)
"""

# Your own images, end to end, from the wheel: a folder split honestly, training, a model file
# that knows how to be used, predictions on files and an ONNX export checked in onnxruntime.
OWN_DATA = """
import pathlib, torchvision.io
import visionblocks as vb
sample = vb.load_dataset("sample")
folder = pathlib.Path("folder")
for i in range(120):
    name = sample.classes[int(sample.labels[i])].replace("/", "-")
    (folder / name).mkdir(parents=True, exist_ok=True)
    torchvision.io.write_png(sample.images[i], str(folder / name / f"{i}.png"))
train = vb.load_dataset(folder, "train", val_fraction=0.25)
val = vb.load_dataset(folder, "val", val_fraction=0.25)
assert len(train) + len(val) == 120 and len(val) >= len(train.classes), (len(train), len(val))
model = vb.simple_cnn(len(train.classes), 1, image_size=28, widths=(4, 8, 8), hidden=16)
vb.fit(model, train, val, epochs=1, progress=False, seed=0, precision="fp32")
vb.save_checkpoint("model.pt", model, model_name="simple_cnn",
                   model_kwargs={"num_classes": len(train.classes), "in_channels": 1,
                                 "image_size": 28, "widths": (4, 8, 8), "hidden": 16},
                   extra={"classes": list(train.classes), "image_shape": [1, 28, 28],
                          "stats": [list(train.mean), list(train.std)]})
files = sorted(folder.rglob("*.png"))[:3]
predictions = vb.predict("model.pt", files, top_k=2)
assert [p.source for p in predictions] == [str(f) for f in files], predictions
assert all(p.label in train.classes for p in predictions), predictions
result = vb.export("model.pt", "model.onnx")
assert result.max_abs_diff < 1e-4, result
print("own-data ok", len(train), len(val), result.max_abs_diff)
"""


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"{args}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow
def test_wheel_installs_and_works_in_a_fresh_venv(tmp_path: Path) -> None:
    pytest.importorskip("build")
    # Build from a copy, so that no build/ or egg-info lands in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    dist = tmp_path / "dist"
    # --no-isolation: use this environment's setuptools instead of downloading one (offline).
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
         "--outdir", dist, source, cwd=tmp_path)  # fmt: skip
    (wheel,) = dist.glob("visionblocks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "visionblocks/py.typed" in names
    assert "visionblocks/data/_sample/train-images-idx3-ubyte.gz" in names
    assert "visionblocks/data/_sample/t10k-labels-idx1-ubyte.gz" in names
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, symlinks=True)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # This interpreter's pip installs into the new environment (no ensurepip, no index).
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel, cwd=tmp_path)  # fmt: skip
    purelib = _run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).stdout.strip()
    deps = {str(Path(m.__file__).resolve().parents[1]) for m in (torch, torchvision, numpy, tqdm)}
    (Path(purelib) / "_visionblocks_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")

    done = _run(python, "-c", CHECK, cwd=tmp_path)
    assert done.stdout.startswith("ok ")
    assert str(env_dir) in done.stdout
    done = _run(python, "-c", OWN_DATA, cwd=tmp_path)
    assert "own-data ok" in done.stdout, done.stdout
    # The console script is installed too and runs from the wheel.
    cli = env_dir / "bin" / "visionblocks"
    if cli.exists():
        listing = _run(cli, "models", "resnet20", cwd=tmp_path).stdout
        assert "272,474" in listing
