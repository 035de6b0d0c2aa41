"""update_momentum, momentum_copy and cosine_schedule against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.momentum import cosine_schedule, momentum_copy, update_momentum


def tiny_net() -> nn.Sequential:
    return nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).double()


def set_params(net: nn.Module, values: list[list[float]]) -> None:
    with torch.no_grad():
        for p, v in zip(net.parameters(), values, strict=True):
            p.copy_(torch.tensor(v, dtype=p.dtype).reshape(p.shape))


# Linear weight (4), Linear bias (2), BN weight (2), BN bias (2); dyadic values keep the EMA exact.
ONLINE = [[1.0, -2.0, 0.5, 4.0], [0.25, -1.0], [2.0, 1.0], [0.0, -0.5]]
TARGET = [[3.0, 2.0, -0.5, 0.0], [1.25, 1.0], [1.0, 1.0], [1.0, 0.5]]


def test_ema_update_is_exact() -> None:
    online, target = tiny_net(), tiny_net()
    set_params(online, ONLINE)
    set_params(target, TARGET)
    update_momentum(target, online, m=0.75)
    for p, t, o in zip(target.parameters(), TARGET, ONLINE, strict=True):
        expected = [0.75 * a + 0.25 * b for a, b in zip(t, o, strict=True)]
        assert p.detach().flatten().tolist() == expected
    # The online network is unchanged.
    assert [p.detach().flatten().tolist() for p in online.parameters()] == ONLINE


@pytest.mark.parametrize(("m", "expected"), [(1.0, TARGET), (0.0, ONLINE)])
def test_momentum_one_keeps_target_and_zero_copies_online(m: float, expected: list[list[float]]) -> None:
    online, target = tiny_net(), tiny_net()
    set_params(online, ONLINE)
    set_params(target, TARGET)
    update_momentum(target, online, m=m)
    assert [p.detach().flatten().tolist() for p in target.parameters()] == expected


def test_buffers_are_copied_from_online() -> None:
    online = tiny_net().train()
    target = momentum_copy(online)
    online(torch.tensor([[1.0, 2.0], [3.0, -2.0]], dtype=torch.float64))  # updates online BN stats
    assert not torch.equal(online[1].running_mean, target[1].running_mean)
    update_momentum(target, online, m=0.9)
    assert torch.equal(target[1].running_mean, online[1].running_mean)
    assert torch.equal(target[1].running_var, online[1].running_var)
    assert int(target[1].num_batches_tracked) == 1


def test_update_works_on_parameters_that_require_grad() -> None:
    # A plain copy still requires grad; the in-place update must run outside autograd.
    online, target = tiny_net(), tiny_net()
    update_momentum(target, online, m=0.5)
    assert all(p.grad_fn is None and p.is_leaf for p in target.parameters())


def test_momentum_copy_has_no_grad_and_is_independent() -> None:
    online = tiny_net()
    target = momentum_copy(online)
    assert all(not p.requires_grad for p in target.parameters())
    assert all(p.requires_grad for p in online.parameters())
    for p, t in zip(online.parameters(), target.parameters(), strict=True):
        assert torch.equal(p, t) and p.data_ptr() != t.data_ptr()
    with torch.no_grad():
        next(online.parameters()).add_(1.0)
    assert not torch.equal(next(online.parameters()), next(target.parameters()))


def test_mismatched_networks_raise() -> None:
    with pytest.raises(ConfigError, match="same parameters"):
        update_momentum(nn.Linear(2, 3), nn.Linear(2, 2), 0.9)
    with pytest.raises(ConfigError, match="same parameters"):
        update_momentum(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.9)


@pytest.mark.parametrize("m", [-0.1, 1.5])
def test_momentum_out_of_range_raises(m: float) -> None:
    with pytest.raises(ConfigError, match="momentum"):
        update_momentum(nn.Linear(2, 2), nn.Linear(2, 2), m)


def test_cosine_schedule_values() -> None:
    assert cosine_schedule(0, 100, start=0.99, end=1.0) == pytest.approx(0.99, abs=1e-15)
    assert cosine_schedule(50, 100, start=0.99, end=1.0) == pytest.approx(0.995, abs=1e-15)
    assert cosine_schedule(100, 100, start=0.99, end=1.0) == pytest.approx(1.0, abs=1e-15)
    quarter = 1.0 - 0.004 * (math.cos(math.pi / 4) + 1) / 2
    assert cosine_schedule(25, 100, start=0.996) == pytest.approx(quarter, abs=1e-15)
    assert cosine_schedule(250, 100) == 1.0  # past the end it stays at the end value


def test_cosine_schedule_is_monotone_from_start_to_end() -> None:
    values = [cosine_schedule(s, 10) for s in range(11)]
    assert all(a < b for a, b in zip(values[:-1], values[1:], strict=True))


@pytest.mark.parametrize(("step", "total"), [(-1, 10), (0, 0)])
def test_cosine_schedule_bad_steps_raise(step: int, total: int) -> None:
    with pytest.raises(ConfigError):
        cosine_schedule(step, total)
