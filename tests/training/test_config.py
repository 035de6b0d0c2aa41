import json
from pathlib import Path

import pytest
import torch

from siamese.data import PRESETS
from siamese.errors import ConfigError
from siamese.runs import RunDir
from siamese.training.config import TrainConfig, build_train_config


def test_defaults_come_from_preset_and_flags_win():
    cfg = build_train_config("face", root="x")
    assert cfg.optim.epochs == PRESETS["face"].training["epochs"]
    cfg = build_train_config("face", root="x", epochs=3, loss="supcon")
    assert cfg.optim.epochs == 3 and cfg.loss.name == "supcon"


def test_loss_and_rotations_follow_the_preset_unless_given():
    assert build_train_config("digits").loss.name == "margin"
    assert build_train_config().loss.name == "supcon"  # the embedded characters' preset, glyphs
    for preset in ("face", "signature", "omniglot", "glyphs"):
        expected = "arcface" if preset == "face" else "supcon"
        assert build_train_config(preset, root="x").loss.name == expected
        assert build_train_config(preset, root="x", loss="margin").loss.name == "margin"
    assert build_train_config("omniglot", root="x").data.rotations == 4
    assert build_train_config("omniglot", root="x", rotations=1).data.rotations == 1
    assert build_train_config("face", root="x").data.rotations == 1
    assert build_train_config("face", root="x").select == "last"
    assert build_train_config("face", root="x", select="best").select == "best"
    assert build_train_config("signature", root="x").select == "stable"  # the default rule
    with pytest.raises(ConfigError, match="select"):
        build_train_config("face", root="x", select="median")
    with pytest.raises(ConfigError, match="rotations must be 1, 2 or 4, got 3"):
        build_train_config("face", root="x", rotations=3)


def test_preset_default_depends_on_root():
    # without a root: the embedded characters to train, the embedded digits to pretrain
    assert build_train_config().data.preset == "glyphs"
    assert build_train_config(method="supervised").data.preset == "glyphs"
    assert build_train_config(method="simclr").data.preset == "digits"
    assert build_train_config(root="faces").data.preset == "face"
    assert build_train_config(root="faces", method="byol").data.preset == "face"


def test_sampler_follows_loss_unless_given():
    assert build_train_config(loss="margin").sampler == "pairs"
    assert build_train_config(loss="supcon").sampler == "mperclass"
    assert build_train_config(loss="triplet").sampler == "triplets"
    assert build_train_config(loss="margin", sampler="mperclass").sampler == "mperclass"


@pytest.mark.parametrize(
    "options, message",
    [
        ({"epochs": -1}, "epochs"),
        ({"loss": "margin", "margin": 0.0}, "margin"),
        ({"temperature": -0.1}, "temperature"),
        ({"loss": "nope"}, "margin, supcon, triplet"),
        ({"encoder": "vgg"}, "smallcnn"),
        ({"miner": "x"}, "multisimilarity"),
        ({"loss": "supcon", "batch_size": 6, "m_per_class": 4}, "multiple of m"),
        ({"loss": "triplet", "sampler": "pairs"}, "triplet loss needs triplets"),
        ({"bogus": 1}, "unknown training option"),
        ({"channels": 2}, "channels"),
    ],
)
def test_nonsense_options_raise_config_error(options, message):
    with pytest.raises(ConfigError, match=message):
        build_train_config(**options)


def test_round_trip_through_json(tmp_path):
    cfg = build_train_config(
        "signature", root="g", forgeries="f", image_size=(155, 220), loss="supcon", beta=0.5
    )
    RunDir(tmp_path).write_config(cfg.to_dict())
    again = TrainConfig.from_dict(RunDir(tmp_path).read_config())
    assert again.to_dict() == cfg.to_dict() and again.sampler == "mperclass"
    assert json.loads((tmp_path / "config.json").read_text())["data"]["sampler"] == "mperclass"


def test_preset_encoder_options_apply_to_smallcnn_only():
    assert (
        build_train_config("signature", root="g").model.encoder_kwargs
        == PRESETS["signature"].training["encoder_kwargs"]
    )
    assert build_train_config("signature", root="g", encoder="resnet18").model.encoder_kwargs == {}
    explicit = build_train_config("signature", root="g", encoder_kwargs={"width": 16})
    assert explicit.model.encoder_kwargs == {"width": 16}


def test_embedding_dim_zero_means_no_projection_head():
    from siamese.training import build_encoder

    encoder = build_encoder(build_train_config("face", root="x", embedding_dim=0), channels=1)
    assert encoder.spec["embedding_dim"] is None and encoder.embedding_dim == encoder.feature_dim == 256 * 9
    with pytest.raises(ConfigError, match="embedding dim must be >= 0"):
        build_train_config("face", root="x", embedding_dim=-1)


def test_pretraining_defaults_replace_the_presets_training_ones_only_for_self_supervised_methods():
    from siamese.data import PRESETS

    pre = PRESETS["omniglot"].pretraining
    ssl = build_train_config("omniglot", root="x", method="simclr")
    supervised = build_train_config("omniglot", root="x")
    assert ssl.data.image_size == tuple(pre["image_size"]) and ssl.optim.batch_size == pre["batch_size"]
    assert supervised.data.image_size is None and supervised.optim.batch_size == 64
    mine = build_train_config("omniglot", root="x", method="byol", batch_size=32)
    assert mine.optim.batch_size == 32  # the user's option still wins
    byol = build_train_config("omniglot", root="x", method="byol")  # its own default over pretraining's
    assert byol.optim.batch_size == PRESETS["omniglot"].method_pretraining["byol"]["batch_size"] != 256
    assert byol.data.image_size == ssl.data.image_size
    preset_byol = PRESETS["omniglot"].method_pretraining["byol"]["method_options"]
    assert byol.method.options["momentum"] == preset_byol["momentum"] != 0.99
    assert "momentum" not in ssl.method.options  # simclr has no momentum target: nothing set for it
    moco = build_train_config("omniglot", root="x", method="moco")
    assert "momentum" not in moco.method.options  # byol's entry does not reach moco (its default stays 0.99)
    mine = build_train_config("omniglot", root="x", method="byol", method_options={"momentum": 0.99})
    assert mine.method.options["momentum"] == 0.99
    mine = build_train_config("omniglot", root="x", method="byol", momentum=0.99)  # by its bare name
    assert mine.method.options["momentum"] == 0.99


def test_method_pretraining_is_checked_and_read_only():
    from siamese.data.presets import Preset

    with pytest.raises(ValueError, match="unknown methods \\['simclrr'\\]"):
        Preset("p", (8, 8), 1, "test", method_pretraining={"simclrr": {"batch_size": 8}})
    preset = Preset("p", (8, 8), 1, "test", pretraining={"batch_size": 16, "epochs": 2},
                    method_pretraining={"byol": {"batch_size": 8}})  # fmt: skip
    assert preset.pretraining_for("byol") == {"batch_size": 8, "epochs": 2}
    assert preset.pretraining_for("simclr") == {"batch_size": 16, "epochs": 2}
    with pytest.raises(TypeError):
        PRESETS["omniglot"].method_pretraining["byol"]["batch_size"] = 1  # type: ignore[index]


def test_a_config_saved_before_batched_views_existed_resumes_with_per_image_views():
    d = build_train_config("omniglot", method="simclr").to_dict()
    assert d["data"]["batched_views"] is True
    del d["data"]["batched_views"]
    assert TrainConfig.from_dict(d).data.batched_views is False


OLD_CONFIGS = Path(__file__).with_name("old_configs.json")
"""`config.json` contents written by the version whose loss and method options were flat fields of
`LossConfig` and `MethodConfig` (`"barlow_lambda": null`, ...), one per kind of run."""


@pytest.mark.parametrize(
    ("run", "method", "loss", "ignored"),
    [
        (
            "arcface",
            {},
            {"margin": 0.3, "scale": 8.0, "lr_multiplier": 5.0, "temperature": 0.2},
            ["--loss-arg temperature has no effect with --loss arcface"],
        ),
        ("byol", {"projection_dim": 64, "momentum": 0.92}, {}, []),
        ("barlow", {"hidden_dim": 32}, {"redundancy_weight": 0.01}, []),
        (
            "vicreg",
            {},
            {
                "invariance_weight": 10.0,
                "variance_weight": 20.0,
                "covariance_weight": 2.0,
                "temperature": 0.5,
            },
            ["--loss-arg temperature has no effect with --method vicreg"],
        ),
        (
            "swav",
            {"queue_size": 16, "prototypes": 8},
            {"epsilon": 0.1, "sinkhorn_iterations": 5, "temperature": 0.2},
            [],
        ),
    ],
)
def test_configs_saved_with_the_flat_option_fields_of_earlier_versions_load(run, method, loss, ignored):
    from siamese.training import build_method

    saved = json.loads(OLD_CONFIGS.read_text())[run]
    assert "options" not in saved["method"] and "options" not in saved["loss"]  # the old layout
    config = TrainConfig.from_dict(saved)
    assert (config.method.options, config.loss.options, config.ignored_options()) == (method, loss, ignored)
    assert TrainConfig.from_dict(config.to_dict()) == config  # and it saves in the new layout
    built = build_method(config, channels=1, num_classes=4)
    for key, value in loss.items():
        if key in config.loss_kwargs():
            assert getattr(built.loss, key) == value
    linears = [m for m in built.modules() if isinstance(m, torch.nn.Linear)]
    if run == "byol":
        projected = built.projector(torch.zeros(2, built.embedding_dim()))
        assert built.momentum == 0.92 and projected.shape == (2, 64)
    if run == "barlow":
        assert linears[1].out_features == 32  # the projector's first layer (after the encoder's head)
    if run == "swav":
        assert config.small_crops == 2 and built.queue.size == 16 and built.prototypes.weight.shape[0] == 8


def test_a_typo_in_an_option_is_an_error_and_an_option_of_another_component_a_warning():
    with pytest.raises(
        ConfigError, match=r"--method-arg momentun: no such option of --method byol \(did you mean momentum"
    ):
        build_train_config(method="byol", method_options={"momentun": 0.9})
    with pytest.raises(ConfigError, match="--loss-arg temprature: no such option of --method simclr"):
        build_train_config(method="simclr", loss_options={"temprature": 0.2})
    with pytest.raises(
        ConfigError, match="--method-arg temperature: .* temperature is a loss option: --loss-arg"
    ):
        build_train_config(method="simclr", method_options={"temperature": 0.2})
    with pytest.raises(ConfigError, match="--method-arg queue_size takes int, got 0.5"):
        build_train_config(method="moco", method_options={"queue_size": 0.5})
    with pytest.raises(ConfigError, match="momentum must be in \\[0, 1\\], got 1.5"):
        build_train_config(method="byol", method_options={"momentum": 1.5})  # checked before any data is read
    with pytest.raises(ConfigError, match="projection dim must be >= 1, got 0"):
        build_train_config(method="simclr", method_options={"projection_dim": 0})
    with pytest.raises(ConfigError, match="NT-Xent temperature must be > 0"):
        build_train_config(method="simclr", loss_options={"temperature": 0.0})
    config = build_train_config(
        method="simclr", method_options={"queue_size": 8}, loss_options={"margin": 1.0}
    )
    assert config.ignored_options() == [
        "--method-arg queue_size has no effect with --method simclr",
        "--loss-arg margin has no effect with --method simclr",
    ]


def test_self_supervised_verification_uses_the_methods_distance_unless_one_is_given():
    from siamese.training import build_method

    for method in ("simclr", "byol", "swav"):
        config = build_train_config(method=method)
        assert config.verification_distance == "cosine" == build_method(config, channels=1).distance
        config = build_train_config(method=method, distance="euclidean")
        assert config.verification_distance == "euclidean" == build_method(config, channels=1).distance
