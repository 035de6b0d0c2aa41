"""Tests for siamese/evaluation/evaluate.py against an independent computation done in the test.

The model is the session's `tiny_run`; the metrics are recomputed here with a naive embedding loop
(open, transform, encode one image at a time), numpy distances and scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

import siamese.inference.evaluate as ev
import siamese.inference.model as loaded_model
from siamese.data import Split, generate_pairs, get_transform, open_image, scan_folder, write_pairs_csv
from siamese.errors import ConfigError, DataError, ImageError
from siamese.evaluation import eer, kfold_verification
from siamese.models.checkpoint import load_checkpoint
from tests.data.test_oneshot_runs import write_oneshot_run


def write_noise_folder(root: Path, n_identities: int = 6, n_images: int = 4, seed: int = 0) -> Path:
    """Identities of unrelated random images: the model cannot separate them perfectly."""
    rng = np.random.default_rng(seed)
    for i in range(n_identities):
        folder = root / f"p{i}"
        folder.mkdir(parents=True)
        for k in range(n_images):
            pixels = rng.integers(0, 256, (20, 20), dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{k}.png")
    return root


def naive_embed(run_dir: Path, paths: list[str]) -> np.ndarray:
    """One image at a time through the checkpoint's eval transform and encoder: (N, D)."""
    model, meta = load_checkpoint(run_dir)
    transform = get_transform(meta["preset"], False, tuple(meta["image_size"]), meta["channels"])
    with torch.no_grad():
        rows = [model.embed(transform(open_image(p, meta["channels"]))[None])[0].numpy() for p in paths]
    return np.stack(rows).astype(np.float64)


def naive_distances(run_dir: Path, pairs: list[tuple[str, str, bool]]) -> tuple[np.ndarray, np.ndarray]:
    paths = sorted({p for a, b, _ in pairs for p in (a, b)})
    emb = dict(zip(paths, naive_embed(run_dir, paths), strict=True))
    d = np.array([np.linalg.norm(emb[a] - emb[b]) for a, b, _ in pairs])
    return d, np.array([s for _, _, s in pairs])


def sklearn_eer(d: np.ndarray, is_same: np.ndarray) -> tuple[float, float]:
    """EER as the mean of FAR and FRR at the ROC point where they are closest, and the ROC step size."""
    far, tar, _ = roc_curve(is_same, -d)
    k = int(np.argmin(np.abs((1 - tar) - far)))
    return (far[k] + 1 - tar[k]) / 2, 1.0 / min(is_same.sum(), (~is_same).sum())


@pytest.fixture
def count_embedded(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the path list of every `embed_files` call made by the pipeline (through its model)."""
    calls: list[list[str]] = []
    real = loaded_model.embed_files

    def spy(encoder, paths, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        calls.append(list(paths))
        return real(encoder, paths, *args, **kwargs)

    monkeypatch.setattr(loaded_model, "embed_files", spy)
    return calls


def test_generated_pairs_match_independent_metrics(tiny_run, tmp_path, count_embedded) -> None:
    run_dir, _ = tiny_run
    data = write_noise_folder(tmp_path / "noise")
    report = ev.evaluate(run_dir, data, split="all", num_pairs=120, seed=3)
    pairs = generate_pairs(scan_folder(data), 120, seed=3)
    d, is_same = naive_distances(run_dir, pairs)
    v = report["verification"]
    assert (v["n_genuine"], v["n_impostor"]) == (60, 60)
    assert v["auc"] == pytest.approx(roc_auc_score(is_same, -d), abs=1e-6)
    rate, step = sklearn_eer(d, is_same)
    assert 0.05 < v["eer"] < 0.95, "noise identities should not be separable"
    assert v["eer"] == pytest.approx(rate, abs=step)
    assert v["eer_threshold"] == pytest.approx(-eer(-d, is_same)[1], abs=1e-5)  # reported as a distance
    assert d.min() <= v["eer_threshold"] <= d.max()
    genuine_d, impostor_d = d[is_same], d[~is_same]
    far, tar, _ = roc_curve(is_same, -d)
    assert v["tar@far=0.1"] == pytest.approx(tar[far <= 0.1].max())
    t = report["threshold"]
    assert v["threshold"] == t
    assert v["accuracy"] == pytest.approx(np.mean((d <= t) == is_same))
    assert v["far"] == pytest.approx(np.mean(impostor_d <= t))
    assert v["frr"] == pytest.approx(np.mean(genuine_d > t))
    unique = {p for a, b, _ in pairs for p in (a, b)}
    assert len(count_embedded) == 1 and sorted(count_embedded[0]) == sorted(unique)  # each image once
    assert report["n_images"] == len(unique)


def test_retrieval_precision_at_1_by_naive_loop(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    data = write_noise_folder(tmp_path / "noise", n_identities=4, n_images=3, seed=1)
    report = ev.evaluate(run_dir, data, split="all", num_pairs=200)
    index = scan_folder(data)
    used = sorted({p for a, b, _ in generate_pairs(index, 200) for p in (a, b)})
    label = {r.path: r.identity for r in index.records}
    emb = naive_embed(run_dir, used)
    dist = np.linalg.norm(emb[:, None] - emb[None], axis=2) + np.diag(np.full(len(used), np.inf))
    hits = [label[used[int(np.argmin(row))]] == label[p] for row, p in zip(dist, used, strict=True)]
    assert report["retrieval"]["precision_at_1"] == pytest.approx(np.mean(hits))


def test_test_split_uses_only_test_identities(tiny_run, count_embedded) -> None:
    run_dir, data = tiny_run
    test_ids = Split.from_json(run_dir / "split.json").test
    report = ev.evaluate(run_dir, data, num_pairs=40)
    assert report["pairs"]["split"] == "test" and report["pairs"]["n_identities"] == len(test_ids)
    embedded = {Path(p).parent.name for p in count_embedded[0]}
    assert embedded == set(test_ids)


def test_split_of_another_dataset_suggests_all(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    other = write_noise_folder(tmp_path / "other")
    with pytest.raises(DataError, match="use split 'all'"):
        ev.evaluate(run_dir, other, num_pairs=10)


def test_pairs_file_and_kfold_keep_file_order(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    data = write_noise_folder(tmp_path / "noise")
    pairs = generate_pairs(scan_folder(data), 40, seed=7)
    pairs_file = tmp_path / "pairs.csv"
    write_pairs_csv(pairs, pairs_file, data)
    report = ev.evaluate(run_dir, data, pairs_file=pairs_file, protocol="kfold", folds=4)
    d, is_same = naive_distances(run_dir, pairs)
    expected = kfold_verification(-d, is_same, folds=4, fars=(1e-2, 1e-3))
    k = report["kfold"]
    assert report["pairs"]["source"] == "file" and k["n_folds"] == 4
    assert k["fold_accuracies"] == pytest.approx(expected["fold_accuracies"])
    assert k["fold_thresholds"] == pytest.approx([-t for t in expected["fold_thresholds"]], abs=1e-5)
    for key in (
        "accuracy_mean",
        "accuracy_std",
        "tar@far=0.01_mean",
        "tar@far=0.01_std",
        "tar@far=0.001_mean",
    ):
        assert k[key] == pytest.approx(expected[key])
    assert report["verification"]["n_genuine"] == int(is_same.sum())


def test_lfw_style_pairs_file(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    lines = ["2", "id00 1 2", "id01 3 5", "id00 1 id01 1", "id02 2 id03 4"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    report = ev.evaluate(run_dir, data, pairs_file=tmp_path / "pairs.txt")
    assert (report["verification"]["n_genuine"], report["verification"]["n_impostor"]) == (2, 2)
    assert report["n_images"] == 7  # id00/1 appears twice but is embedded once
    assert report["retrieval"] is not None  # id00 and id01 each have two images in genuine pairs


def test_bad_pairs_line_raises_with_line_number(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    (tmp_path / "p.csv").write_text(
        "path1,path2,is_same\nid00/img_0.png,id00/img_1.png,1\nid00/img_0.png,2\n"
    )
    with pytest.raises(DataError, match="line 3"):
        ev.evaluate(run_dir, data, pairs_file=tmp_path / "p.csv")


def test_unreadable_image_is_an_image_error(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    (tmp_path / "p.csv").write_text(f"id00/img_0.png,{broken},0\nid00/img_0.png,id00/img_1.png,1\n")
    with pytest.raises(ImageError, match="1 of 3 images could not be read"):
        ev.evaluate(run_dir, data, pairs_file=tmp_path / "p.csv")


def test_out_dir_gets_report_and_three_plots(tiny_run, tmp_path) -> None:
    run_dir, data = tiny_run
    out = tmp_path / "eval"
    report = ev.evaluate(run_dir, data, split="all", num_pairs=30, out_dir=out)
    assert json.loads((out / "report.json").read_text()) == report
    for name in ("roc.png", "det.png", "distances.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["files"]["report"] == str(out / "report.json")


def test_forgeries_are_embedded_as_impostors(tiny_run, forgery_folders, count_embedded) -> None:
    run_dir, _ = tiny_run
    genuine, forged = forgery_folders
    report = ev.evaluate(run_dir, genuine, forgeries=forged, split="all", num_pairs=40, forgery_fraction=1.0)
    embedded_forgeries = [p for p in count_embedded[0] if Path(p).is_relative_to(forged)]
    assert embedded_forgeries and report["verification"]["n_impostor"] == 20
    assert report["pairs"]["forgeries"] == str(forged)


def test_oneshot_perfect_copies_and_shuffled_labels(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    root = tmp_path / "runs"
    write_oneshot_run(root, "run01", mapping=[2, 0, 1, 3], seed=1)
    # Queries are copies of class k, but class_labels.txt says class k+1: every answer must be wrong.
    write_oneshot_run(root, "run02", mapping=[1, 2, 3, 0], query_copies=[0, 1, 2, 3], seed=2)
    report = ev.evaluate(run_dir, root, protocol="oneshot")
    o = report["oneshot"]
    assert [r["accuracy"] for r in o["runs"]] == [1.0, 0.0]
    assert o["mean_accuracy"] == 0.5 and o["n_runs"] == 2 and o["runs"][0]["n_way"] == 4
    assert report["n_images"] == 16


def test_oneshot_noisy_queries_match_naive_nearest_neighbour(tiny_run, tmp_path) -> None:
    run_dir, _ = tiny_run
    run = write_oneshot_run(tmp_path, "run01", mapping=[0, 1, 2, 3, 4, 0, 1, 2], noise=90.0, seed=4)
    report = ev.evaluate(run_dir, run, protocol="oneshot")
    support = naive_embed(run_dir, sorted(str(p) for p in (run / "training").iterdir()))
    queries = naive_embed(run_dir, sorted(str(p) for p in (run / "test").iterdir()))
    nearest = np.argmin(np.linalg.norm(queries[:, None] - support[None], axis=2), axis=1)
    expected = np.mean(nearest == np.array([0, 1, 2, 3, 4, 0, 1, 2]))
    assert report["oneshot"]["runs"][0]["accuracy"] == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "lfw"}, "unknown protocol"),
        ({"protocol": "oneshot", "pairs_file": "x.csv"}, "oneshot"),
        ({"pairs_file": "x.csv", "forgeries": "f"}, "forgeries"),
        ({"batch_size": 0}, "batch_size"),
        ({"folds": 1}, "folds"),
        ({"split": "holdout"}, "unknown split"),
    ],
)
def test_bad_options_are_config_errors(tiny_run, kwargs, message) -> None:
    run_dir, data = tiny_run
    with pytest.raises(ConfigError, match=message):
        ev.evaluate(run_dir, data, **kwargs)
