"""Tests for siamese/data/oneshot_runs.py on fake runs laid out like Omniglot's `all_runs`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from siamese.data.oneshot_runs import OneShotRun, list_oneshot_runs, read_oneshot_run
from siamese.errors import DataError


def write_oneshot_run(
    root: Path,
    name: str,
    mapping: Sequence[int],
    query_copies: Sequence[int] | None = None,
    noise: float = 0.0,
    seed: int = 0,
) -> Path:
    """Write `root/name/{training,test}/` and `class_labels.txt` as in Omniglot's runs.

    Args:
        root: folder holding the runs.
        name: run folder name, e.g. "run01".
        mapping: class_labels.txt says query k (item k+1) belongs to support class mapping[k] (0-based).
        query_copies: query k's pixels are support image query_copies[k] (+ noise); defaults to `mapping`.
        noise: std of Gaussian pixel noise added to the queries.
        seed: seed of the support patterns and the noise.
    """
    rng = np.random.default_rng(seed)
    run = root / name
    (run / "training").mkdir(parents=True)
    (run / "test").mkdir()
    n_way = max(mapping) + 1
    support = [np.kron(rng.uniform(0, 255, (4, 4)), np.ones((6, 6))) for _ in range(n_way)]  # 24x24 blobs
    for c, pixels in enumerate(support):
        Image.fromarray(pixels.astype(np.uint8), mode="L").save(run / "training" / f"class{c + 1:02d}.png")
    lines = []
    for k, c in enumerate(mapping):
        source = support[(query_copies if query_copies is not None else mapping)[k]]
        pixels = np.clip(source + rng.normal(0, noise, source.shape), 0, 255) if noise else source
        Image.fromarray(pixels.astype(np.uint8), mode="L").save(run / "test" / f"item{k + 1:02d}.png")
        lines.append(f"{name}/test/item{k + 1:02d}.png {name}/training/class{c + 1:02d}.png")
    (run / "class_labels.txt").write_text("\n".join(lines) + "\n")
    return run


def test_read_run_maps_queries_to_support_labels(tmp_path: Path) -> None:
    run_dir = write_oneshot_run(tmp_path, "run01", mapping=[2, 0, 1])
    run = read_oneshot_run(run_dir)
    assert isinstance(run, OneShotRun) and run.name == "run01" and run.n_way == 3
    assert run.support_labels == ("class01", "class02", "class03")
    assert [Path(p).name for p in run.support_paths] == ["class01.png", "class02.png", "class03.png"]
    assert [Path(p).name for p in run.query_paths] == ["item01.png", "item02.png", "item03.png"]
    assert run.query_labels == ("class03", "class01", "class02")
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in run.support_paths + run.query_paths)


def test_support_set_in_natural_order(tmp_path: Path) -> None:
    run_dir = write_oneshot_run(tmp_path, "run01", mapping=list(range(12)))
    labels = read_oneshot_run(run_dir).support_labels
    assert labels == tuple(f"class{c:02d}" for c in range(1, 13))


def test_renamed_run_folder_and_run_relative_paths(tmp_path: Path) -> None:
    write_oneshot_run(tmp_path, "run01", mapping=[1, 0])
    renamed = tmp_path / "episode_a"
    (tmp_path / "run01").rename(renamed)  # class_labels.txt still says run01/...
    assert read_oneshot_run(renamed).query_labels == ("class02", "class01")
    (renamed / "class_labels.txt").write_text("test/item01.png training/class01.png\n\n")
    run = read_oneshot_run(renamed)
    assert run.query_labels == ("class01",) and run.n_way == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("run01/test/item01.png run01/training/class01.png\nrun01/test/item02.png\n", "line 2: expected"),
        ("run01/test/item01.png run01/training/class09.png\n", "line 1: image file not found"),
        ("run01/test/item01.png run01/test/item02.png\n", "line 1: run01/test/item02.png is not an image"),
        ("\n\n", "lists no test images"),
    ],
)
def test_bad_label_file_names_the_line(tmp_path: Path, content: str, message: str) -> None:
    run_dir = write_oneshot_run(tmp_path, "run01", mapping=[0, 1])
    (run_dir / "class_labels.txt").write_text(content)
    with pytest.raises(DataError, match=message):
        read_oneshot_run(run_dir)


def test_missing_pieces_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_oneshot_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class_labels.txt"):
        read_oneshot_run(tmp_path / "empty")


def test_list_runs_natural_order_single_run_and_errors(tmp_path: Path) -> None:
    for name in ("run10", "run2", "run1"):
        write_oneshot_run(tmp_path / "runs", name, mapping=[0, 1])
    (tmp_path / "runs" / "notes").mkdir()  # no class_labels.txt: not a run
    assert [p.name for p in list_oneshot_runs(tmp_path / "runs")] == ["run1", "run2", "run10"]
    assert list_oneshot_runs(tmp_path / "runs" / "run2") == [(tmp_path / "runs" / "run2").absolute()]
    with pytest.raises(DataError, match="holds no one-shot runs"):
        list_oneshot_runs(tmp_path / "runs" / "notes")
    with pytest.raises(DataError, match="not found"):
        list_oneshot_runs(tmp_path / "missing")


def test_real_omniglot_runs(shared_data: Path) -> None:
    root = shared_data / "omniglot" / "one_shot_runs"
    if not root.is_dir():
        pytest.skip("omniglot one_shot_runs not present")
    runs = list_oneshot_runs(root)
    assert [p.name for p in runs] == [f"run{k:02d}" for k in range(1, 21)]
    run = read_oneshot_run(runs[0])
    assert run.n_way == 20 and len(run.query_paths) == 20
    assert set(run.query_labels) == set(run.support_labels)  # each class queried once
    assert run.query_labels[0] == "class08"  # run01/test/item01.png run01/training/class08.png
