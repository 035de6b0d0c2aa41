import csv
import json

import pytest
import torch

from siamese.training.config import build_train_config
from siamese.training.run import train
from siamese.training.trainer import Callback
from tests.conftest import write_identity_folder


@pytest.mark.parametrize("loss", ["margin", "supcon", "triplet"])
def test_train_writes_a_complete_run_directory(tmp_path, loss):
    image_folder = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    cfg = build_train_config(
        "digits",
        root=str(image_folder),
        loss=loss,
        epochs=2,
        batch_size=8,
        m_per_class=2,
        samples_per_epoch=16,
        eval_pairs=8,
        val_fraction=0.25,
        test_fraction=0.25,
        out=str(out),
        embedding_dim=8,
        miner="multisimilarity" if loss == "supcon" else None,
    )
    summary = train(cfg)
    for name in (
        "config.json",
        "split.json",
        "metrics.csv",
        "summary.json",
        "checkpoints/best.safetensors",
        "checkpoints/best.json",
        "checkpoints/last.json",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_loss", "val_loss", "val_eer", "threshold"} <= set(rows[0])
    split = json.loads((out / "split.json").read_text())
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    meta = json.loads((out / "checkpoints/best.json").read_text())
    assert meta["threshold"] == summary["threshold"] and meta["preset"] == "digits"
    _assert_test_metrics_match_an_independent_computation(cfg, out, summary)


def _assert_test_metrics_match_an_independent_computation(cfg, out, summary):
    """Re-embed the run's test pairs with its saved model and score them with sklearn."""
    import numpy as np
    import torch
    from sklearn.metrics import roc_auc_score

    from siamese.data import Split
    from siamese.models import pair_distance
    from siamese.models.checkpoint import load_checkpoint
    from siamese.training import prepare_data

    data = prepare_data(cfg, Split.from_json(out / "split.json"))
    model, meta = load_checkpoint(out)
    distances, same = [], []
    with torch.no_grad():
        for images, _, (a, p, n) in data.test_loader:
            emb = model.embed(images)
            distances += pair_distance(emb[a], emb[p], meta["distance"]).tolist()
            distances += pair_distance(emb[a], emb[n], meta["distance"]).tolist()
            same += [True] * len(a) + [False] * len(a)
    d, y = np.array(distances), np.array(same)
    test = summary["test"]
    assert test["pairs"] == len(d) > 0
    assert test["auc"] == pytest.approx(roc_auc_score(y, -d), abs=1e-6)
    assert test["accuracy"] == pytest.approx(np.mean((d <= summary["threshold"]) == y))


def test_forgeries_train(tmp_path):
    genuine = write_identity_folder(tmp_path / "genuine", n_identities=8, n_images=4, seed=1)
    forged = write_identity_folder(tmp_path / "forged", n_identities=8, n_images=3, seed=2)
    cfg = build_train_config(
        "signature",
        root=str(genuine),
        forgeries=str(forged),
        loss="margin",
        epochs=1,
        batch_size=4,
        samples_per_epoch=8,
        eval_pairs=8,
        image_size=(24, 32),
        val_fraction=0.25,
        test_fraction=0.25,
        out=str(tmp_path / "sig"),
        embedding_dim=8,
    )
    summary = train(cfg)
    assert summary["test"]["pairs"] == 8
    from siamese.data import Split
    from siamese.training import prepare_data

    data = prepare_data(cfg, Split.from_json(tmp_path / "sig" / "split.json"))
    records = data.train_loader.dataset.index.records
    pairs = data.train_loader.dataset.pairs()
    impostors = [(records[a], records[b]) for a, b, same in pairs if not same]
    skilled = [(ra, rb) for ra, rb in impostors if rb.forgery]
    assert all(not records[a].forgery and not records[b].forgery for a, b, same in pairs if same)
    assert skilled and all(ra.identity == rb.identity for ra, rb in skilled)  # forgeries of the anchor
    assert len(skilled) < len(impostors)  # and random impostors too


def test_threshold_rules_and_calibration_are_stored(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    metas = {}
    for rule in ("eer", "far"):
        cfg = build_train_config(
            "digits",
            root=str(data),
            epochs=1,
            batch_size=8,
            samples_per_epoch=16,
            eval_pairs=40,
            val_fraction=0.25,
            test_fraction=0.25,
            embedding_dim=8,
            out=str(tmp_path / rule),
            threshold_rule=rule,
            target_far=0.01,
        )
        train(cfg)
        metas[rule] = json.loads((tmp_path / rule / "checkpoints/best.json").read_text())
    # both runs see identical weights and pairs (same seed); a 1% FAR target is at least as strict as the EER
    assert metas["far"]["threshold"] <= metas["eer"]["threshold"]
    assert metas["far"]["target_far"] == 0.01 and metas["eer"]["target_far"] is None
    cal = metas["eer"]["calibration"]
    assert set(cal) == {"coef", "intercept"} and cal["coef"] < 0  # larger distance -> less likely the same


def test_explicit_split_is_used(tmp_path):
    from siamese.data import Split

    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    split = Split(train=("id00", "id01", "id02", "id03"), val=("id04", "id05"), test=("id06", "id07"))
    cfg = build_train_config(
        "digits",
        root=str(data),
        epochs=1,
        batch_size=8,
        samples_per_epoch=16,
        eval_pairs=8,
        embedding_dim=8,
        out=str(tmp_path / "run"),
    )
    train(cfg, split=split)
    assert json.loads((tmp_path / "run" / "split.json").read_text()) == {
        k: list(v) for k, v in split.to_dict().items()
    }


def test_mperclass_batches_carry_skilled_forgeries_as_unique_labels(tmp_path):
    from siamese.training import prepare_data

    genuine = write_identity_folder(tmp_path / "genuine", n_identities=8, n_images=4, seed=1)
    forged = write_identity_folder(tmp_path / "forged", n_identities=8, n_images=3, seed=2)
    cfg = build_train_config(
        "signature",
        root=str(genuine),
        forgeries=str(forged),
        loss="supcon",
        batch_size=8,
        m_per_class=2,
        samples_per_epoch=16,
        eval_pairs=8,
        image_size=(24, 32),
        val_fraction=0.25,
        test_fraction=0.25,
    )
    data = prepare_data(cfg)
    n_ids = len(data.index.subset(data.split.train).identities)
    images, labels, _ = next(iter(data.train_loader))
    forgery_labels = labels[labels >= n_ids]
    assert len(images) == 8 + 2 and len(forgery_labels) == 2  # forgery_fraction 0.5 of bs/2
    assert len(set(forgery_labels.tolist())) == 2  # each forgery its own label: never a positive


def test_rotations_multiply_training_identities_only(tmp_path):
    from siamese.training import prepare_data

    root = write_identity_folder(tmp_path / "chars", n_identities=10, n_images=4, size=(12, 12))
    cfg = build_train_config(
        "omniglot", root=str(root), batch_size=8, m_per_class=2, samples_per_epoch=16, eval_pairs=8
    )
    assert cfg.data.rotations == 4
    data = prepare_data(cfg)
    train_index = data.train_loader.dataset.index
    assert len(train_index.identities) == 4 * len(data.split.train)
    assert {name.partition("@")[0] for name in train_index.identities} == set(data.split.train)
    val_paths = {r.path for r in data.val_loader.dataset.index.records}
    assert not any("@" in r.identity for r in data.val_loader.dataset.index.records) and val_paths
    images, labels, _ = next(iter(data.train_loader))
    assert images.shape == (8, 1, 64, 64) and len(set(labels.tolist())) == 4


@pytest.mark.parametrize("select", ["best", "last"])
def test_select_decides_which_epoch_is_the_runs_model(tmp_path, select):
    root = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    out = tmp_path / "run"
    cfg = build_train_config(
        "digits",
        root=str(root),
        epochs=4,
        batch_size=8,
        m_per_class=2,
        samples_per_epoch=16,
        eval_pairs=8,
        val_fraction=0.25,
        test_fraction=0.25,
        embedding_dim=8,
        out=str(out),
        select=select,
    )
    summary = train(cfg)
    val_eer = [float(r["val_eer"]) for r in csv.DictReader((out / "metrics.csv").open())]
    expected = 4 if select == "last" else 1 + val_eer.index(min(val_eer))
    assert summary["best_epoch"] == expected and summary["val_eer"] == pytest.approx(val_eer[expected - 1])
    best = (out / "checkpoints/best.safetensors").read_bytes()
    assert (best == (out / "checkpoints/last.safetensors").read_bytes()) == (expected == 4)


def test_supcon_on_views_sees_both_views_of_each_image_labelled_by_identity(tmp_path):
    from siamese.training import prepare_data

    root = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    cfg = build_train_config(
        "digits",
        root=str(root),
        loss="supcon",
        sampler="views",
        batch_size=8,
        eval_pairs=8,
        embedding_dim=8,
        epochs=1,
        out=str(tmp_path / "run"),
    )
    data = prepare_data(cfg)
    images, labels = next(iter(data.train_loader))
    assert images.shape == (8, 2, 1, 32, 32) and not torch.equal(images[:, 0], images[:, 1])
    train_ids = data.train_loader.dataset.labels
    assert set(labels.tolist()) <= set(train_ids.tolist()) and (labels >= 0).all()
    summary = train(cfg)
    assert summary["test"]["pairs"] == 8


class _ClassWeights(Callback):
    """Keeps the margin-softmax class weights and the optimiser's learning rates at fit start and end."""

    def on_fit_start(self, trainer):
        self.start = trainer.method.loss.W.detach().clone()
        groups = trainer.optimizer.param_groups
        self.groups = [(g["initial_lr"], [id(p) for p in g["params"]]) for g in groups]
        self.weight_id = id(trainer.method.loss.W)

    def on_fit_end(self, trainer):
        self.end = trainer.method.loss.W.detach().clone()


# 2 epochs of a margin-softmax loss on 4 training identities of tiny images
TINY_CLASS_WEIGHTS = dict(
    loss="arcface",
    epochs=2,
    batch_size=8,
    m_per_class=2,
    samples_per_epoch=32,
    eval_pairs=16,
    val_fraction=0.25,
    test_fraction=0.25,
    embedding_dim=8,
    lr=2e-3,
)


@pytest.mark.parametrize("loss", ["arcface", "cosface", "subcenter"])
def test_margin_softmax_class_weights_train_at_their_lr_and_stay_out_of_the_model(tmp_path, loss):
    from safetensors.torch import load_file

    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=5)
    cfg = build_train_config(
        "digits",
        root=str(data),
        **{**TINY_CLASS_WEIGHTS, "loss": loss},
        lr_multiplier=4.0,
        out=str(tmp_path / "run"),
    )
    watch = _ClassWeights()
    summary = train(cfg, callbacks=[watch])
    (encoder_lr, _), (weights_lr, weight_ids) = watch.groups
    assert (encoder_lr, weights_lr) == (pytest.approx(2e-3), pytest.approx(8e-3))
    assert weight_ids == [watch.weight_id]
    classes = 4 * (3 if loss == "subcenter" else 1)  # 4 training identities, 3 sub-centres each
    assert watch.start.shape == (8, classes) and (watch.end - watch.start).abs().max() > 1e-3
    state = load_file(str(tmp_path / "run" / "checkpoints" / "state.safetensors"))
    torch.testing.assert_close(state["model.loss.W"], watch.end)  # resumable: the weights are saved
    best = load_file(str(tmp_path / "run" / "checkpoints" / "best.safetensors"))
    assert not any("loss" in k or k == "W" for k in best)  # the model is the encoder alone
    meta = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    assert meta["distance"] == "cosine" and meta["loss"] == loss
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert rows[0]["val_loss"] == "nan" and float(rows[0]["val_eer"]) >= 0  # no class weights for val
    assert 0 <= summary["test"]["eer"] <= 1


def test_forgery_classes_train_one_class_weight_per_imitated_identity(tmp_path):
    genuine = write_identity_folder(tmp_path / "genuine", n_identities=8, n_images=5, seed=1)
    forged = write_identity_folder(tmp_path / "forged", n_identities=8, n_images=3, seed=2)
    opts = dict(root=str(genuine), forgeries=str(forged), **TINY_CLASS_WEIGHTS)
    watched = {}
    for classes in (False, True):
        watch = _ClassWeights()
        cfg = build_train_config(
            "digits", **opts, forgery_classes=classes, out=str(tmp_path / f"run{classes}")
        )
        train(cfg, callbacks=[watch])
        watched[classes] = watch
    # 4 training writers: 4 class weights, or 4 + 4 with a class per writer's forgeries
    assert watched[False].start.shape == (8, 4) and watched[True].start.shape == (8, 8)
    moved = (watched[True].end - watched[True].start).abs().amax(dim=0)  # (8,) per class
    assert (moved[4:] > 1e-3).all()  # the forgery classes are trained (their images are labelled)
    with_forgeries = build_train_config("digits", **opts, forgery_classes=True)
    assert with_forgeries.ignored_options() == []
    assert build_train_config(
        "digits", **{**opts, "forgeries": None}, forgery_classes=True
    ).ignored_options() == ["--forgery-classes has no effect without --forgeries"]
    assert "--forgery-classes has no effect" in " ".join(
        build_train_config("digits", **{**opts, "loss": "margin"}, forgery_classes=True).ignored_options()
    )


def test_tta_flip_is_the_runs_default_and_its_threshold_is_chosen_with_it(tmp_path):
    from siamese.inference import Verifier
    from siamese.models.checkpoint import load_checkpoint

    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    opts = dict(
        root=str(data),
        loss="arcface",
        epochs=1,
        batch_size=8,
        m_per_class=2,
        samples_per_epoch=16,
        eval_pairs=16,
        val_fraction=0.25,
        test_fraction=0.25,
        embedding_dim=8,
        image_size=(16, 12),
        encoder_kwargs={"grid": 1},
    )
    plain = train(build_train_config("face", out=str(tmp_path / "plain"), **opts))
    flip = train(build_train_config("face", out=str(tmp_path / "flip"), tta="flip", **opts))
    model, meta = load_checkpoint(tmp_path / "flip")
    assert meta["tta"] == "flip" and load_checkpoint(tmp_path / "plain")[1]["tta"] == "none"
    assert Verifier.from_checkpoint(tmp_path / "flip").tta == "flip"
    assert Verifier.from_checkpoint(tmp_path / "flip", tta="none").tta == "none"
    # the same weights (same seed, TTA never changes training): only the scored embeddings differ
    plain_model, _ = load_checkpoint(tmp_path / "plain")
    for a, b in zip(model.state_dict().values(), plain_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert flip["threshold"] != plain["threshold"]
