"""Shared fixtures: tiny generated image folders; a few real LFW photos where ../shared/data has them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def write_identity_folder(
    root: Path,
    n_identities: int = 4,
    n_images: int = 5,
    size: tuple[int, int] = (24, 20),
    mode: str = "L",
    seed: int = 0,
    prefix: str = "id",
) -> Path:
    """Write `root/<prefix>NN/img_K.png`: each identity is a distinct blob pattern plus noise.

    Images of one identity share a base pattern so a model can learn something in a few steps.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    h, w = size
    for i in range(n_identities):
        base = rng.uniform(0, 255, size=(4, 4))
        base = np.kron(base, np.ones((h // 4 + 1, w // 4 + 1)))[:h, :w]
        folder = root / f"{prefix}{i:02d}"
        folder.mkdir(exist_ok=True)
        for k in range(n_images):
            img = np.clip(base + rng.normal(0, 12, size=(h, w)), 0, 255).astype(np.uint8)
            Image.fromarray(img, mode="L").convert(mode).save(folder / f"img_{k}.png")
    return root


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Four identities x five 24x20 grayscale PNGs."""
    return write_identity_folder(tmp_path / "genuine")


@pytest.fixture
def forgery_folders(tmp_path: Path) -> tuple[Path, Path]:
    """CEDAR-like layout: genuine/<writer>/ and forged/<writer>/ with the same writer names."""
    genuine = write_identity_folder(tmp_path / "genuine", n_identities=4, n_images=4, seed=1)
    forged = write_identity_folder(tmp_path / "forged", n_identities=4, n_images=3, seed=2)
    return genuine, forged


@pytest.fixture
def shared_data() -> Path:
    """Path to ../shared/data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data not present")
    return SHARED_DATA


LFW_IMAGES = SHARED_DATA / "lfw" / "images"
"""LFW (deep-funneled): `<Person>/<Person>_NNNN.jpg`, 250x250 RGB photos with the face in the middle."""


@pytest.fixture
def lfw() -> Path:
    """`../shared/data/lfw/images`; skips the test when it is absent."""
    if not LFW_IMAGES.is_dir():
        pytest.skip("../shared/data/lfw not present")
    return LFW_IMAGES


def lfw_photo(lfw: Path, person: str, k: int = 1) -> Path:
    """LFW's photo `k` of `person` (`Aaron_Eckhart`, ...)."""
    return lfw / person / f"{person}_{k:04d}.jpg"


def face_on_canvas(
    photo: Path, offset: tuple[int, int], size: tuple[int, int] = (640, 480), scale: float = 1.0
) -> Image.Image:
    """A grey RGB canvas of `size` (W, H) with `photo`, resized by `scale`, pasted at `offset` (x, y)."""
    with Image.open(photo) as img:
        face = img.convert("RGB")
    if scale != 1.0:
        face = face.resize((round(face.width * scale), round(face.height * scale)))
    canvas = Image.new("RGB", size, (128, 128, 128))
    canvas.paste(face, offset)
    return canvas


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A trained run directory (2 epochs, 8 identities x 5 images, 24x20) and its data folder.

    Returns:
        (run_dir, data_root). Session-scoped: do not modify the files; copy them first.
    """
    from siamese.training.config import build_train_config
    from siamese.training.run import train

    base = tmp_path_factory.mktemp("tiny")
    data = write_identity_folder(base / "data", n_identities=8, n_images=5)
    cfg = build_train_config(
        "digits",
        root=str(data),
        loss="margin",
        epochs=2,
        batch_size=8,
        samples_per_epoch=32,
        eval_pairs=16,
        val_fraction=0.25,
        test_fraction=0.25,
        embedding_dim=8,
        select="best",  # the model every inference test was written against
        out=str(base / "run"),
    )
    train(cfg)
    return base / "run", data


@pytest.fixture(scope="session")
def glyphs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `SIAMESE_CACHE` folder holding the embedded characters (`glyphs-0`), rendered once per session.

    Do not modify its files."""
    from siamese.data import materialize_glyphs

    cache = tmp_path_factory.mktemp("siamese-cache")
    materialize_glyphs(cache / "glyphs-0")
    return cache
