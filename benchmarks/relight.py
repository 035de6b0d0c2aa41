"""A relit copy of a face folder: the second face protocol the presets are checked on.

The `face` preset was tuned on ORL, whose faces are evenly lit. Users' faces are not: the issue's
untuned example is a set photographed under strongly varying lighting. This script writes a copy of
an identity folder in which every image gets its own lighting, drawn from the seed and the image's
path (the same copy on every run):

- a directional shading: the image times `1 + a * d`, where `d` runs from -1 to 1 across the
  image along a random direction and `a` is uniform in [0.3, 0.9] (times `--strength`);
- a gamma uniform in log-space in [1/2.2, 2.2] (to the power `--strength`);
- a contrast factor uniform in [0.5, 1.1] around the mean and a brightness shift in [-0.15, 0.15].

Run `benchmarks/orl.py` on the copy for the same protocol (4 identity-disjoint folds, both peers at
our wall time) on relit faces; the copy goes wherever OUT says, never into the repository:

    python benchmarks/relight.py ../shared/data/att_faces /tmp/att_relit
    python benchmarks/orl.py /tmp/att_relit --out /tmp/relit   # published as results/canonical/orl_relit.*
"""

from __future__ import annotations

import argparse
import os
import zlib
from pathlib import Path

import numpy as np
from common import require_dir, run_main
from PIL import Image

from siamese.data import scan_folder


def relight(gray: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """One random lighting of an 8-bit grayscale image (H, W); returns 8-bit (H, W)."""
    x = gray.astype(np.float64) / 255.0
    h, w = x.shape
    theta = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    along = (xx - (w - 1) / 2) * np.cos(theta) + (yy - (h - 1) / 2) * np.sin(theta)
    d = along / max(np.abs(along).max(), 1e-9)  # -1 .. 1 across the image
    x = x * np.clip(1.0 + strength * rng.uniform(0.3, 0.9) * d, 0.05, None)
    x = np.clip(x, 0.0, 1.0) ** (np.exp(rng.uniform(-1.0, 1.0) * np.log(2.2)) ** strength)
    contrast, shift = rng.uniform(0.5, 1.1), rng.uniform(-0.15, 0.15)
    x = (x - x.mean()) * contrast + x.mean() + shift
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data_root", type=Path, help="identity folder of face images (read-only)")
    p.add_argument("out", type=Path, help="where the relit copy goes (created; same layout)")
    p.add_argument("--seed", type=int, default=0, help="seed of the lightings")
    p.add_argument("--strength", type=float, default=1.0, help="scales the shading, gamma and nothing else")
    args = p.parse_args()
    require_dir(args.data_root, "data_root")
    paths = [Path(r.path) for r in scan_folder(args.data_root).records]
    for path in paths:
        rel = Path(os.path.relpath(path, args.data_root))
        rng = np.random.default_rng([args.seed, zlib.crc32(rel.as_posix().encode())])
        gray = np.asarray(Image.open(path).convert("L"))
        target = args.out / rel.with_suffix(".png")
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(relight(gray, rng, args.strength), mode="L").save(target)
    print(f"relit {len(paths)} images of {args.data_root} into {args.out} (seed {args.seed})")


if __name__ == "__main__":
    run_main(main)
