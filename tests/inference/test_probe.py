"""`probe` on a trained run: its accuracies recomputed from the run's own embeddings, and one-shot runs."""

import numpy as np
import pytest

from siamese.errors import DataError
from siamese.evaluation import knn_accuracy, n_way_one_shot_accuracy
from siamese.evaluation.probe import linear_probe_accuracy, stratified_split
from siamese.inference.probe import ProbeOptions, probe
from siamese.inference.verifier import Verifier
from tests.conftest import write_identity_folder
from tests.data.test_oneshot_runs import write_oneshot_run


def test_probe_scores_equal_a_recomputation_from_the_embeddings(tiny_run, tmp_path):
    run, _ = tiny_run
    data = write_identity_folder(tmp_path / "ids", n_identities=5, n_images=6, seed=3)
    options = ProbeOptions(k=3, knn_temperature=0.5, test_fraction=0.5, seed=2)
    report = probe(run, data, options=options, device="cpu")
    paths = sorted(str(p) for p in data.rglob("*.png"))
    labels = np.array([int(p.split("/")[-2][2:]) for p in paths])
    emb = Verifier.from_checkpoint(run).embed(paths)
    train, test = stratified_split(labels, 0.5, seed=2)
    assert report.identities == 5 and report.images == 30 and (report.memory, report.queries) == (15, 15)
    assert report.knn_accuracy == pytest.approx(
        knn_accuracy(emb[train], labels[train], emb[test], labels[test], k=3, temperature=0.5)
    )
    assert report.linear_accuracy == pytest.approx(
        linear_probe_accuracy(emb[train], labels[train], emb[test], labels[test])
    )
    assert report.one_shot_accuracy is None and report.options["k"] == 3


def test_probe_one_shot_runs_average_the_per_run_accuracy(tiny_run, tmp_path):
    run, _ = tiny_run
    write_oneshot_run(tmp_path / "runs", "run01", [2, 0, 1, 3], noise=40, seed=1)
    write_oneshot_run(tmp_path / "runs", "run02", [1, 1, 0, 2], query_copies=[0, 1, 0, 2], seed=2)
    report = probe(run, oneshot=tmp_path / "runs", device="cpu")
    verifier = Verifier.from_checkpoint(run)
    for entry in report.one_shot_runs:
        folder = tmp_path / "runs" / entry["run"]
        lines = [line.split() for line in (folder / "class_labels.txt").read_text().splitlines()]
        support = sorted(str(p) for p in (folder / "training").glob("*.png"))
        queries = [str(tmp_path / "runs" / q) for q, _ in lines]
        truth = [s.split("/")[-1][:-4] for _, s in lines]
        expected = n_way_one_shot_accuracy(
            verifier.embed(support),
            [p.split("/")[-1][:-4] for p in support],
            verifier.embed(queries),
            truth,
            verifier.distance,
        )
        assert entry["accuracy"] == pytest.approx(expected)
    assert report.one_shot_runs[1]["accuracy"] == 0.75  # query 2 copies class01 but is labelled class02
    assert report.one_shot_accuracy == pytest.approx(np.mean([r["accuracy"] for r in report.one_shot_runs]))
    assert report.knn_accuracy is None


def test_probe_needs_an_input_and_labelled_identities(tiny_run, tmp_path):
    run, _ = tiny_run
    with pytest.raises(DataError, match="DATA"):
        probe(run)
    flat = write_identity_folder(tmp_path / "one", n_identities=1, n_images=4)
    with pytest.raises(DataError, match="one folder per identity"):
        probe(run, flat)
