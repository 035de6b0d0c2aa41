"""`siamese pretrain` through Typer's CliRunner, and `siamese train --init` from its run."""

import json

import pytest
from safetensors.torch import load_file
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.cli.components import DEPRECATED
from tests.conftest import write_identity_folder

runner = CliRunner(env={"COLUMNS": "250"})
TINY = ["--preset", "digits", "--epochs", "1", "--batch-size", "8", "--embedding-dim", "8"]


@pytest.mark.parametrize("method", ["simclr", "moco", "byol", "swav", "simsiam", "barlow", "vicreg"])
def test_pretrain_writes_an_encoder_only_run_with_its_table(tmp_path, method):
    data = write_identity_folder(tmp_path / "ids", n_identities=4, n_images=4)
    out = tmp_path / "run"
    extra = {"moco": ["--method-arg", "queue_size=16"], "swav": ["--method-arg", "prototypes=8"]}.get(
        method, []
    )
    result = runner.invoke(app, ["pretrain", str(data), "--method", method, *TINY, *extra, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "k-NN accuracy" in result.output and "embedding spread" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method and summary["images"] == 16 and 0 <= summary["knn_acc"] <= 1
    weights = load_file(str(out / "checkpoints" / "best.safetensors"))
    state = load_file(str(out / "checkpoints" / "state.safetensors"))
    assert not any(k.startswith(("projector", "target", "predictor", "prototypes")) for k in weights)
    assert any(k.startswith("model.projector") for k in state)  # heads live in the training state only
    meta = json.loads((out / "checkpoints" / "best.json").read_text())
    assert meta["method"] == method and meta["threshold"] is None


@pytest.mark.parametrize(
    ("method", "flags", "saved"),
    [
        (
            "simsiam",
            ["--method-arg", "predictor_dim=4", "--method-arg", "projection_dim=16"],
            {"method": {"predictor_dim": 4, "projection_dim": 16}},
        ),
        (
            "barlow",
            ["--loss-arg", "redundancy_weight=0.01", "--method-arg", "hidden_dim=32"],
            {"loss": {"redundancy_weight": 0.01}, "method": {"hidden_dim": 32}},
        ),
        (
            "vicreg",
            ["--loss-arg", "invariance_weight=10", "--loss-arg", "variance_weight=20"]
            + ["--loss-arg", "covariance_weight=2"],
            {"loss": {"invariance_weight": 10.0, "variance_weight": 20.0, "covariance_weight": 2.0}},
        ),
        (
            "byol",
            ["--stop-on-collapse", "--collapse-threshold", "0.05", "--method-arg", "momentum=0.9"],
            {"top": {"stop_on_collapse": True, "collapse_threshold": 0.05}, "method": {"momentum": 0.9}},
        ),
        (  # the flags of earlier versions: the same options, each with a deprecation warning
            "barlow",
            ["--barlow-lambda", "0.01", "--hidden-dim", "32"],
            {"loss": {"redundancy_weight": 0.01}, "method": {"hidden_dim": 32}},
        ),
        (
            "vicreg",
            ["--vicreg-invariance", "10", "--vicreg-variance", "20", "--vicreg-covariance", "2"],
            {"loss": {"invariance_weight": 10.0, "variance_weight": 20.0, "covariance_weight": 2.0}},
        ),
    ],
)
def test_method_flags_reach_the_saved_config_and_the_trained_heads(tmp_path, method, flags, saved):
    data = write_identity_folder(tmp_path / "ids", n_identities=2, n_images=4)
    out = tmp_path / "run"
    result = runner.invoke(app, ["pretrain", str(data), "--method", method, *TINY, *flags, "--out", str(out)])
    assert result.exit_code == 0, result.output
    old = [f for f in flags if f.startswith("--") and f[2:].replace("-", "_") in DEPRECATED]
    assert [f for f in old if f"{f} is deprecated: use --" not in result.stderr] == []
    assert ("is deprecated" in result.stderr) == bool(old)
    config = json.loads((out / "config.json").read_text())["method"]
    loss = json.loads((out / "config.json").read_text())["loss"]
    assert {k: config[k] for k in saved.get("top", {})} == saved.get("top", {})
    assert config["options"] == saved.get("method", {}) and loss["options"] == saved.get("loss", {})
    state = load_file(str(out / "checkpoints" / "state.safetensors"))
    if "predictor_dim" in saved.get(
        "method", {}
    ):  # PredictionHead's first Linear: (bottleneck, projection_dim)
        assert tuple(state["model.predictor.0.weight"].shape) == (4, 16)
    if "hidden_dim" in saved.get("method", {}):
        assert tuple(state["model.projector.0.weight"].shape) == (32, 8)  # (hidden, --embedding-dim)


def test_an_option_of_another_method_warns_that_it_has_no_effect(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=2, n_images=4)
    args = ["pretrain", str(data), "--method", "barlow", *TINY, "--loss-arg", "variance_weight=5"]
    args += ["--method-arg", "queue_size=8"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "--loss-arg variance_weight has no effect with --method barlow" in result.stderr
    assert "--method-arg queue_size has no effect with --method barlow" in result.stderr
    result = runner.invoke(app, ["pretrain", str(data), "--method", "moco", "--method-arg", "queue_sise=8"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "error: --method-arg queue_sise: no such option of --method moco (did you mean queue_size?); its "
        "options: projection_dim, hidden_dim, queue_size, momentum, momentum_end, shuffle_groups"
    ]


def test_list_method_args_shows_the_constructors_defaults_and_its_losss():
    import inspect

    from siamese.training import METHODS

    for name, cls in METHODS.items():
        result = runner.invoke(app, ["pretrain", "--list-method-args", name])
        assert result.exit_code == 0, result.output
        params = dict(inspect.signature(cls).parameters)
        if cls.loss_class is not None:
            params.update(inspect.signature(cls.loss_class).parameters)
        keywords = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        supplied = ("encoder", "loss", "distance", "miner", "tta")
        shown = [p for p in params.values() if p.kind in keywords and p.name not in supplied]
        for p in shown:
            assert f"  {p.name} ({p.annotation}, default {p.default!r})" in result.output, (name, p.name)
    moco = runner.invoke(app, ["pretrain", "--list-method-args", "moco"]).output
    assert "queue_size (int, default 4096): number of negative keys kept." in moco
    assert "its loss (InfoNCELoss): --loss-arg KEY=VALUE\n  temperature (float, default 0.2)" in moco


def test_distance_takes_effect_in_the_pretrained_model(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=2, n_images=4)
    for distance in (None, "euclidean"):
        out = tmp_path / f"run-{distance}"
        flags = [] if distance is None else ["--distance", distance]
        result = runner.invoke(app, ["pretrain", str(data), *TINY, *flags, "--out", str(out)])
        assert result.exit_code == 0, result.output
        meta = json.loads((out / "checkpoints" / "best.json").read_text())
        assert meta["distance"] == (distance or "cosine")  # the method's default, cosine


def test_small_crops_reach_only_a_method_that_trains_on_them(tmp_path):
    from siamese.training.config import TrainConfig
    from siamese.training.loaders import input_geometry, view_transform

    data = write_identity_folder(tmp_path / "ids", n_identities=2, n_images=4)
    for method, crops in (("swav", 2), ("simclr", 0)):
        out = tmp_path / method
        args = ["pretrain", str(data), "--method", method, *TINY, "--small-crops", "2", "--out", str(out)]
        result = runner.invoke(app, [*args, "--method-arg", "prototypes=8"] if method == "swav" else args)
        assert result.exit_code == 0, result.output
        warned = "--small-crops has no effect with --method simclr (only swav trains on small crops)"
        assert (warned in result.stderr) == (method == "simclr")
        config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
        assert config.method.small_crops == 2 and config.small_crops == crops
        assert view_transform(config, *input_geometry(config)).n_local == crops


def test_train_init_starts_from_the_pretrained_encoder(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    pre = tmp_path / "pre"
    assert runner.invoke(app, ["pretrain", str(data), *TINY, "--out", str(pre)]).exit_code == 0
    args = ["train", str(data), *TINY, "--lr", "1e-12", "--warmup-epochs", "0", "--samples-per-epoch", "8"]
    result = runner.invoke(
        app, [*args, "--eval-pairs", "8", "--init", str(pre), "--out", str(tmp_path / "ft")]
    )
    assert result.exit_code == 0, result.output
    start = load_file(str(pre / "checkpoints" / "best.safetensors"))
    tuned = load_file(str(tmp_path / "ft" / "checkpoints" / "best.safetensors"))
    kernels = [k for k, v in start.items() if v.ndim >= 2]  # conv and linear weights (BN stats move)
    assert kernels and all((tuned[k] - start[k]).abs().max() < 1e-6 for k in kernels)  # lr ~0


def test_init_with_another_architecture_is_one_line_error(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=8, n_images=4)
    pre = tmp_path / "pre"
    assert runner.invoke(app, ["pretrain", str(data), *TINY, "--out", str(pre)]).exit_code == 0
    args = ["train", str(data), "--preset", "digits", "--batch-size", "8", "--embedding-dim", "16"]
    result = runner.invoke(app, [*args, "--init", str(pre)])
    assert (
        result.exit_code == 1
        and "does not fit" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )


def test_pretrain_resume_refuses_other_options(tmp_path):
    result = runner.invoke(app, ["pretrain", "--resume", str(tmp_path), "--epochs", "3"])
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: --resume continues a run with its saved config; remove --epochs"


def test_an_unreadable_image_is_dropped_up_front_with_one_warning(tmp_path):
    data = write_identity_folder(tmp_path / "ids", n_identities=4, n_images=4)
    (data / "id00" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "run"
    result = runner.invoke(app, ["pretrain", str(data), *TINY, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("skipping 1 unreadable images") == 1
    assert json.loads((out / "summary.json").read_text())["images"] == 16


@pytest.mark.parametrize("flag,batched", [([], True), (["--per-image-views"], False)])
def test_the_view_augmentation_flag_reaches_the_config_and_picks_the_transform(tmp_path, flag, batched):
    from siamese.data import BatchViews, MultiView
    from siamese.training.config import TrainConfig
    from siamese.training.loaders import input_geometry, view_transform

    data = write_identity_folder(tmp_path / "ids", n_identities=2, n_images=4)
    out = tmp_path / "run"
    result = runner.invoke(app, ["pretrain", str(data), *TINY, *flag, "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = TrainConfig.from_dict(json.loads((out / "config.json").read_text()))
    assert config.data.batched_views is batched
    views = view_transform(config, *input_geometry(config))
    assert isinstance(views, BatchViews if batched else MultiView)
