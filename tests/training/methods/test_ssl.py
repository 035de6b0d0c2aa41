"""The self-supervised methods through the real Trainer: gradients, momentum targets, queues, prototypes."""

import pytest
import torch

from siamese import names
from siamese.losses.barlow import BarlowTwinsLoss
from siamese.losses.vicreg import VICRegLoss
from siamese.models import get_encoder
from siamese.training import METHODS, Batch, Trainer, get_method
from siamese.training.methods import BYOLMethod, MoCoMethod, SimCLRMethod, SimSiamMethod, SwAVMethod
from siamese.training.state import load_training_state, save_training_state

SMALL = {"moco": {"queue_size": 16}, "swav": {"prototypes": 8, "queue_size": 8}}  # sized for 8 images
SSL = {name: SMALL.get(name, {}) for name in names.SSL_METHODS}  # every registered method, new ones too
NO_TARGET = ["simsiam", "barlow", "vicreg"]  # one set of weights for both branches: no target, no queue


def _encoder(seed=0):
    torch.manual_seed(seed)
    return get_encoder("smallcnn", in_channels=1, embedding_dim=16, width=4)


def _views(n=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, 1, 16, 16, generator=g)  # (N, V, C, H, W)


def _trainer(name, **kw):
    method = get_method(name, _encoder(), hidden_dim=32, projection_dim=8, **{**SSL[name], **kw})
    return Trainer(method, torch.optim.SGD(method.param_groups(0.05), lr=0.05))


def test_registry_matches_names():
    assert tuple(METHODS) == names.METHODS and set(SMALL) <= set(names.SSL_METHODS)
    assert [n for n, c in METHODS.items() if c.uses_labels] == ["supervised"]
    for name, cls in METHODS.items():  # each found in the module of its name, training with a loss
        assert cls.__module__ == f"siamese.training.methods.{name}"
        assert (cls.loss_class is None) == cls.uses_labels


@pytest.mark.parametrize("name", sorted(SSL))
def test_step_is_finite_updates_the_encoder_and_keeps_only_it(name):
    trainer = _trainer(name)
    trainer.step((_views(seed=5), None, None), train=True)  # MoCo's queue is empty at the first step
    before = [p.detach().clone() for p in trainer.method.encoder.parameters()]
    out = trainer.step((_views(), None, None), train=True)
    assert torch.isfinite(out.loss) and out.embeddings.shape[1] == 16
    after = trainer.method.encoder.parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    twin = trainer.method.twin()
    assert twin.encoder is trainer.method.encoder and "encoder" not in trainer.method.training_only()
    assert trainer.method.training_only()  # heads (and targets) are dropped from checkpoints


def test_unknown_method_option_is_a_clear_error():
    from siamese.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown option.*'margin'.*simclr"):
        get_method("simclr", _encoder(), margin=1.0)


def test_moco_ema_is_exact_key_encoder_has_no_gradient_and_queue_excludes_own_keys():
    trainer = _trainer("moco", momentum=0.9, momentum_end=0.9)
    method: MoCoMethod = trainer.method
    online_before = [p.detach().clone() for p in method.online().parameters()]
    target_before = [p.detach().clone() for p in method.target.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(online_before, target_before, strict=True))
    seen_queue = []
    orig = method.queue.features
    method.queue.features = lambda: (seen_queue.append(len(orig())), orig())[1]
    trainer.step((_views(), None, None), train=True)
    assert seen_queue == [0] and len(method.queue) == 8  # loss used the queue before this batch's keys
    assert all(p.grad is None and not p.requires_grad for p in method.target.parameters())
    for t, t0, o in zip(method.target.parameters(), target_before, method.online().parameters(), strict=True):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * o)


def test_moco_queue_and_target_survive_a_state_round_trip(tmp_path):
    trainer = _trainer("moco")
    for seed in range(3):
        trainer.step((_views(seed=seed), None, None), train=True)
    save_training_state(tmp_path / "state", trainer, epoch=1, step_in_epoch=0)
    fresh = _trainer("moco")
    load_training_state(tmp_path / "state", fresh)
    a, b = trainer.method, fresh.method
    assert torch.equal(a.queue.features(), b.queue.features()) and len(b.queue) == 16
    assert all(torch.equal(x, y) for x, y in zip(a.target.parameters(), b.target.parameters(), strict=True))


def test_byol_target_has_no_gradient_and_momentum_follows_the_cosine_schedule():
    trainer = _trainer("byol")
    method: BYOLMethod = trainer.method
    trainer.step((_views(), None, None), train=True)
    assert all(p.grad is None for p in method.target.parameters())
    assert method.current_momentum(0, 100) == pytest.approx(0.99)
    assert method.current_momentum(50, 100) == pytest.approx(0.995)
    assert method.current_momentum(100, 100) == pytest.approx(1.0)


def test_swav_prototypes_frozen_then_trained_and_always_normalised():
    trainer = _trainer("swav", freeze_prototypes=1)
    method: SwAVMethod = trainer.method
    first = method.prototypes.weight.detach().clone()
    trainer.step((_views(seed=1), None, None), train=True)
    trainer.global_step = 1  # what Trainer.train_epoch does between steps
    torch.testing.assert_close(method.prototypes.weight, first / first.norm(dim=1, keepdim=True))
    frozen = method.prototypes.weight.detach().clone()
    trainer.step((_views(seed=2), None, None), train=True)
    assert not torch.equal(method.prototypes.weight, frozen)
    torch.testing.assert_close(method.prototypes.weight.norm(dim=1), torch.ones(8))
    assert len(method.queue) == 8  # 2 global views x 8 images, the newest 8 kept


def test_simclr_multi_view_loss_equals_ntxent_on_its_projections():
    from siamese.losses.ntxent import NTXentLoss

    trainer = _trainer("simclr")
    method: SimCLRMethod = trainer.method
    method.eval()
    x = _views()
    out = method.training_step(Batch(x))
    z = method.projector(method.embed(torch.cat([x[:, 0], x[:, 1]])))
    assert out.loss.item() == pytest.approx(NTXentLoss(0.1)(*z.chunk(2)).item(), rel=1e-6)


@pytest.mark.parametrize("name", NO_TARGET)
def test_repeated_steps_on_one_batch_reduce_the_loss(name):
    method = get_method(name, _encoder(), hidden_dim=32, projection_dim=8)
    trainer = Trainer(method, torch.optim.SGD(method.param_groups(0.005), lr=0.005))  # VICReg's 25s: small lr
    x = _views(seed=3)
    losses = [trainer.step((x, None, None), train=True).loss.item() for _ in range(15)]
    assert losses[-1] < losses[0] - 0.1 * abs(losses[0]), losses


@pytest.mark.parametrize("name", NO_TARGET)
def test_every_trained_module_gets_a_gradient_and_nothing_is_a_target(name):
    method = _trainer(name).method
    method.training_step(Batch(_views())).loss.backward()
    trained = ["encoder", "projector", "predictor"] if name == "simsiam" else ["encoder", "projector"]
    assert sorted(n for n, m in method.named_children() if any(True for _ in m.parameters())) == sorted(
        trained
    )
    for module in trained:
        grads = [p.grad for p in getattr(method, module).parameters()]
        assert all(g is not None for g in grads), module
        assert sum(g.abs().sum().item() for g in grads) > 0, module
    assert not hasattr(method, "target") and not hasattr(method, "queue")


@pytest.mark.parametrize("name", NO_TARGET)
def test_state_round_trip_resumes_the_same_next_step(name, tmp_path):
    trainer = _trainer(name)
    for seed in range(3):
        trainer.step((_views(seed=seed), None, None), train=True)
    save_training_state(tmp_path / "state", trainer, epoch=1, step_in_epoch=0)
    fresh = _trainer(name)
    load_training_state(tmp_path / "state", fresh)
    a, b = trainer.method.state_dict(), fresh.method.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # BatchNorm statistics included
    next_a = trainer.step((_views(seed=9), None, None), train=True).loss
    next_b = fresh.step((_views(seed=9), None, None), train=True).loss
    assert torch.equal(next_a, next_b)
    after_a, after_b = trainer.method.state_dict(), fresh.method.state_dict()
    assert all(torch.equal(after_a[k], after_b[k]) for k in after_a)  # the optimiser state came back too


def _projections(method, x):
    """The two views' projector outputs, as the method's step computes them (eval: fixed BatchNorm)."""
    return method.projector(method.embed(torch.cat([x[:, 0], x[:, 1]]))).chunk(2)


def test_simsiam_loss_pairs_each_prediction_with_the_other_views_projection():
    from siamese.losses.simsiam import SimSiamLoss

    method: SimSiamMethod = _trainer("simsiam").method
    method.eval()
    x = _views()
    z1, z2 = _projections(method, x)
    p1, p2 = method.predictor(z1), method.predictor(z2)
    assert method.training_step(Batch(x)).loss.item() == pytest.approx(
        SimSiamLoss()(p1, p2, z1, z2).item(), rel=1e-6
    )
    assert method.predictor[0].out_features == 2  # bottleneck: projection_dim 8 // 4


def test_simsiam_stop_gradient_the_projector_learns_only_through_the_predictor():
    method: SimSiamMethod = _trainer("simsiam").method
    x = _views()
    method.training_step(Batch(x)).loss.backward()
    ours = [p.grad.clone() for p in method.projector.parameters()]
    method.zero_grad()
    z1, z2 = _projections(method, x)  # the same loss without the stop-gradient: z is pulled as well
    cos = torch.nn.functional.cosine_similarity
    (-(cos(method.predictor(z1), z2).mean() + cos(method.predictor(z2), z1).mean()) / 2).backward()
    assert any(
        not torch.allclose(a, p.grad) for a, p in zip(ours, method.projector.parameters(), strict=True)
    )


@pytest.mark.parametrize(
    ("name", "options", "loss_class", "weights"),
    [
        ("barlow", {"redundancy_weight": 0.2}, BarlowTwinsLoss, {"redundancy_weight": 0.2}),
        (
            "vicreg",
            {"invariance_weight": 2.0, "variance_weight": 3.0, "covariance_weight": 4.0},
            VICRegLoss,
            {"invariance_weight": 2.0, "variance_weight": 3.0, "covariance_weight": 4.0},
        ),
        ("barlow", {"barlow_lambda": 0.2}, BarlowTwinsLoss, {"redundancy_weight": 0.2}),  # earlier names
        (
            "vicreg",
            {"vicreg_invariance": 2.0, "vicreg_variance": 3.0, "vicreg_covariance": 4.0},
            VICRegLoss,
            {"invariance_weight": 2.0, "variance_weight": 3.0, "covariance_weight": 4.0},
        ),
    ],
)
def test_options_flow_from_the_config_into_the_loss_the_step_uses(name, options, loss_class, weights):
    from siamese.training import build_method
    from siamese.training.config import build_train_config

    config = build_train_config(method=name, **options, projection_dim=8, hidden_dim=32)
    assert config.loss.options == weights and config.method.options == {"projection_dim": 8, "hidden_dim": 32}
    assert not config.ignored_options()
    torch.manual_seed(0)
    method = build_method(config, channels=1)
    assert {k: getattr(method.loss, k) for k in weights} == weights
    method.eval()
    x = _views()
    expected = loss_class(**weights)(*_projections(method, x))
    assert method.training_step(Batch(x)).loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_temperature_has_no_effect_on_the_non_contrastive_methods():
    from siamese.training.config import build_train_config

    config = build_train_config(method="vicreg", temperature=0.5, barlow_lambda=0.1)
    assert config.ignored_options() == [
        "--loss-arg redundancy_weight has no effect with --method vicreg",
        "--loss-arg temperature has no effect with --method vicreg",
    ]
