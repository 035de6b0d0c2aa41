"""Small builders shared by the data tests."""

from __future__ import annotations

from PIL import Image

from siamese.data import ImageIndex, ImageRecord


def make_index(sizes: dict[str, int], forged: dict[str, int] | None = None) -> ImageIndex:
    """An index of fake paths `/g/<name>/<k>.png` (+ `/f/...` forgeries); sampling never opens files."""
    records = [ImageRecord(f"/g/{name}/{k}.png", name) for name in sorted(sizes) for k in range(sizes[name])]
    for name, n in sorted((forged or {}).items()):
        records += [ImageRecord(f"/f/{name}/{k}.png", name, forgery=True) for k in range(n)]
    return ImageIndex(records=tuple(records), identities=tuple(sorted(sizes)))


def pil_image(size: tuple[int, int], value: int = 200, mode: str = "L") -> Image.Image:
    """A uniform Pillow image of `size` (W, H) at grey level `value`, "L" or "RGB"."""
    return Image.new(mode, size, value if mode == "L" else (value,) * 3)
