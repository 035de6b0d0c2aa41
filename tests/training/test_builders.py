"""Tests for siamese/training/builders.py: every loss flag takes effect or is reported as ignored."""

import logging

import pytest

from siamese.errors import ConfigError
from siamese.losses import LOSSES, MarginContrastiveLoss, SupConLoss, TripletLoss, loss_options
from siamese.training import Method, SupervisedMethod, build_method, build_optimizer, build_train_config

FLAGS = {
    "margin": 0.5,
    "temperature": 0.3,
    "beta": 0.7,
    "distance": "cosine",
    "scale": 8.0,
    "sub_centers": 2,
    "lr_multiplier": 5.0,
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_loss_flag_takes_effect_or_is_reported(loss, flag, caplog):
    cfg = build_train_config("digits", loss=loss, m_per_class=4, **{flag: FLAGS[flag]})
    with caplog.at_level(logging.WARNING, logger="siamese"):
        method = build_method(cfg, channels=1, num_classes=6)
    cli_flag = "--distance" if flag == "distance" else f"--loss-arg {flag}"
    warned = f"{cli_flag} has no effect with --loss {loss}" in caplog.text
    if flag in loss_options(loss):
        assert not warned
        if flag == "distance":
            assert method.loss.distance.is_inverted  # pml's CosineSimilarity, whatever the loss's default
        else:
            assert getattr(method.loss, flag) == FLAGS[flag]
    else:
        assert warned and cli_flag in cfg.ignored_options()[0]


def test_distance_reaches_supcon_and_triplet_and_defaults_stay_the_losses_own():
    def loss_of(**kw):
        return build_method(build_train_config("digits", m_per_class=4, **kw), channels=1).loss

    assert isinstance(loss_of(loss="supcon"), SupConLoss) and loss_of(loss="supcon").distance.is_inverted
    assert not loss_of(loss="supcon", distance="euclidean").distance.is_inverted
    assert not loss_of(loss="triplet").distance.is_inverted
    assert loss_of(loss="triplet", distance="cosine").distance.is_inverted
    assert isinstance(loss_of(loss="margin"), MarginContrastiveLoss) and loss_of(loss="margin").margin == 1.0
    assert isinstance(loss_of(loss="triplet"), TripletLoss) and loss_of(loss="triplet").margin == 0.2
    assert build_method(build_train_config("digits", distance="cosine"), 1).distance == "cosine"
    assert build_method(build_train_config("digits"), 1).distance == "euclidean"


def test_miner_without_mperclass_is_reported(caplog):
    cfg = build_train_config("digits", loss="margin", miner="multisimilarity")
    with caplog.at_level(logging.WARNING, logger="siamese"):
        method = build_method(cfg, channels=1)
    assert method.miner is None and "--miner multisimilarity has no effect" in caplog.text


def test_optimizer_covers_parameters_held_by_the_loss():
    import torch

    class ProxyLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proxies = torch.nn.Parameter(torch.randn(3, 64))

        def forward(self, emb, labels, indices=None):
            return (emb @ self.proxies.T).logsumexp(1).mean()

    base = build_method(build_train_config("digits"), channels=1)
    method = SupervisedMethod(base.encoder, ProxyLoss())
    opt, _ = build_optimizer(build_train_config("digits"), method, steps_per_epoch=1)
    optimised = {id(p) for group in opt.param_groups for p in group["params"]}
    assert id(method.loss.proxies) in optimised
    assert isinstance(method, Method) and method.training_only() == ["loss"]


def test_margin_softmax_losses_get_classes_and_embedding_size_from_data_and_model():
    cfg = build_train_config("digits", loss="subcenter", embedding_dim=16, sub_centers=2)
    method = build_method(cfg, channels=1, num_classes=7)
    assert (method.loss.num_classes, tuple(method.loss.W.shape)) == (7, (16, 14))
    with pytest.raises(ConfigError, match="number of training identities"):
        build_method(cfg, channels=1)


def test_margin_softmax_losses_verify_with_cosine_and_refuse_euclidean():
    for loss in ("arcface", "cosface", "subcenter"):
        assert build_method(build_train_config("digits", loss=loss), 1, num_classes=5).distance == "cosine"
        assert build_train_config("digits", loss=loss, distance="cosine").verification_distance == "cosine"
        with pytest.raises(ConfigError, match=f"--loss {loss} trains with the cosine distance only"):
            build_train_config("digits", loss=loss, distance="euclidean")
    assert build_train_config("digits", loss="supcon").verification_distance == "euclidean"


def test_miner_with_a_margin_softmax_loss_is_reported_and_not_built(caplog):
    cfg = build_train_config("digits", loss="arcface", miner="multisimilarity")
    assert cfg.sampler == "mperclass"
    with caplog.at_level(logging.WARNING, logger="siamese"):
        method = build_method(cfg, channels=1, num_classes=5)
    assert method.miner is None and "--miner multisimilarity has no effect with --loss arcface" in caplog.text


def test_class_weights_get_their_own_param_group_at_lr_times_multiplier():
    cfg = build_train_config("digits", loss="cosface", lr=2e-3, lr_multiplier=5.0)
    method = build_method(cfg, channels=1, num_classes=5)
    opt, _ = build_optimizer(cfg, method, steps_per_epoch=4)
    encoder_group, loss_group = opt.param_groups
    assert [p is method.loss.W for p in loss_group["params"]] == [True]
    assert loss_group["initial_lr"] == pytest.approx(1e-2) and encoder_group["initial_lr"] == 2e-3
    encoder_ids = {id(p) for p in method.encoder.parameters()}
    assert {id(p) for p in encoder_group["params"]} == encoder_ids
    assert method.training_only() == ["loss"]
    assert set(method.twin().state_dict()) == {f"encoder.{k}" for k in method.encoder.state_dict()}


def test_tta_reaches_the_method_and_the_checkpoint_metadata():
    from types import SimpleNamespace

    from siamese.training import checkpoint_metadata

    cfg = build_train_config("face", loss="arcface", tta="flip", embedding_dim=8)
    assert build_method(cfg, channels=1, num_classes=5).tta == "flip"
    data = SimpleNamespace(image_size=(56, 46), channels=1)
    assert checkpoint_metadata(cfg, data)["tta"] == "flip"
    assert checkpoint_metadata(build_train_config("face"), data)["tta"] == "none"
    with pytest.raises(ConfigError, match="--tta flip needs a preset that trains with horizontal flips"):
        build_train_config("signature", tta="flip")


@pytest.mark.parametrize(("source", "target"), [(3, 1), (1, 3)])
def test_init_adopts_the_architecture_and_fits_the_input_channels(tmp_path, source, target):
    """A colour model starts a grayscale run and the other way round: the init's encoder options
    are adopted, and a grayscale image (as 1 channel, or replicated to 3) embeds as before."""
    import torch

    from siamese.models import get_encoder
    from siamese.models.checkpoint import save_checkpoint
    from siamese.models.twin import TwinNetwork
    from siamese.training.builders import build_encoder, checkpoint_metadata

    torch.manual_seed(0)
    spec = {"width": 8, "grid": 2, "dropout": 0.0}
    encoder = get_encoder("smallcnn", in_channels=source, embedding_dim=16, normalize=True, **spec)
    preset = "face-wild" if source == 3 else "face"
    config = build_train_config(preset, root=".", embedding_dim=16, encoder_kwargs=spec)
    stem = tmp_path / "start" / "checkpoints" / "best"
    meta = checkpoint_metadata(config, type("Data", (), {"image_size": (32, 32), "channels": source})())
    save_checkpoint(stem, TwinNetwork(encoder, distance="cosine"), {**meta, "epoch": 1})

    preset = "face" if target == 1 else "face-wild"
    adopted = build_train_config(preset, root=".", init=str(stem))
    assert adopted.model.embedding_dim == 16 and spec.items() <= adopted.model.encoder_kwargs.items()
    started = build_encoder(adopted, channels=target).eval()
    gray = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = encoder.eval()(gray.expand(-1, source, -1, -1))
        after = started(gray.expand(-1, target, -1, -1))
    assert torch.allclose(before, after, atol=1e-5)
    # an architecture option given by the user wins (and then must fit)
    assert build_train_config(preset, root=".", init=str(stem), embedding_dim=32).model.embedding_dim == 32
