"""Tests for siamese/training/builders.py: every loss flag takes effect or is reported as ignored."""

import logging

import pytest

from siamese.losses import LOSSES, MarginContrastiveLoss, SupConLoss, TripletLoss, loss_options
from siamese.training import Method, SupervisedMethod, build_method, build_optimizer, build_train_config

FLAGS = {"margin": 0.5, "temperature": 0.3, "beta": 0.7, "distance": "cosine"}


@pytest.mark.parametrize("loss", sorted(LOSSES))
@pytest.mark.parametrize("flag", sorted(FLAGS))
def test_each_loss_flag_takes_effect_or_is_reported(loss, flag, caplog):
    cfg = build_train_config("digits", loss=loss, m_per_class=4, **{flag: FLAGS[flag]})
    with caplog.at_level(logging.WARNING, logger="siamese"):
        method = build_method(cfg, channels=1)
    warned = f"--{flag} has no effect with --loss {loss}" in caplog.text
    if flag in loss_options(loss):
        assert not warned
        if flag == "distance":
            assert method.loss.distance.is_inverted  # pml's CosineSimilarity, whatever the loss's default
        else:
            assert getattr(method.loss, flag) == FLAGS[flag]
    else:
        assert warned and flag in cfg.ignored_options()[0]


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
