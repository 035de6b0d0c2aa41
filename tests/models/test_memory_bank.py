"""FeatureQueue: FIFO order, wrap-around, oversize batches, detaching and the state_dict round trip."""

from __future__ import annotations

import pytest
import torch

from siamese.errors import ConfigError
from siamese.models.memory_bank import FeatureQueue


def rows(*ids: int) -> torch.Tensor:
    """Row ``i`` is ``[i, -i]``, so the queue's contents name the keys that went in: ``(N, 2)``."""
    return torch.tensor([[float(i), -float(i)] for i in ids])


def ids(queue: FeatureQueue) -> list[int]:
    return [int(r[0]) for r in queue.features()]


def test_starts_empty() -> None:
    queue = FeatureQueue(5, 2)
    assert len(queue) == 0 and queue.features().shape == (0, 2)


def test_fills_in_order_then_overwrites_the_oldest() -> None:
    queue = FeatureQueue(5, 2)
    queue.enqueue(rows(1, 2))
    assert ids(queue) == [1, 2] and len(queue) == 2
    queue.enqueue(rows(3, 4))
    assert ids(queue) == [1, 2, 3, 4]
    queue.enqueue(rows(5, 6, 7))  # crosses the end: 5 fills the last row, 6 and 7 wrap to the start
    assert ids(queue) == [3, 4, 5, 6, 7] and len(queue) == 5
    assert queue.queue[:, 0].tolist() == [6.0, 7.0, 3.0, 4.0, 5.0]
    assert int(queue.ptr) == 2
    queue.enqueue(rows(8))
    assert ids(queue) == [4, 5, 6, 7, 8]


def test_exactly_full_batch_resets_the_pointer() -> None:
    queue = FeatureQueue(3, 2)
    queue.enqueue(rows(1, 2, 3))
    assert ids(queue) == [1, 2, 3] and int(queue.ptr) == 0
    queue.enqueue(rows(4))
    assert ids(queue) == [2, 3, 4]


def test_oversize_batch_keeps_the_newest_rows() -> None:
    queue = FeatureQueue(3, 2)
    queue.enqueue(rows(1))
    queue.enqueue(rows(10, 11, 12, 13, 14))
    assert ids(queue) == [12, 13, 14] and len(queue) == 3
    queue.enqueue(rows(15))
    assert ids(queue) == [13, 14, 15]


def test_enqueued_keys_are_detached() -> None:
    queue = FeatureQueue(4, 2)
    keys = rows(1, 2).requires_grad_()
    queue.enqueue(keys * 2)
    assert not queue.queue.requires_grad and not queue.features().requires_grad
    assert ids(queue) == [2, 4]


def test_features_are_a_snapshot_so_loss_can_backprop_after_enqueue() -> None:
    # The ordering contract: loss from features() first, enqueue next; backward may come later.
    queue = FeatureQueue(4, 2)
    queue.enqueue(rows(1, 2))
    negatives = queue.features()  # (2, D)
    query = torch.tensor([[1.0, 0.5]], requires_grad=True)
    loss = (query @ negatives.T).sum()
    queue.enqueue(rows(3, 4, 5))  # overwrites row 0 in place
    assert [int(r[0]) for r in negatives] == [1, 2]
    loss.backward()
    assert torch.allclose(query.grad, rows(1, 2).sum(0, keepdim=True))


def test_state_dict_round_trip_restores_queue_pointer_and_fill() -> None:
    queue = FeatureQueue(4, 2)
    queue.enqueue(rows(1, 2, 3))
    queue.enqueue(rows(4, 5))
    state = queue.state_dict()
    assert set(state) == {"queue", "ptr", "filled"}
    restored = FeatureQueue(4, 2)
    restored.load_state_dict(state)
    assert ids(restored) == [2, 3, 4, 5] and len(restored) == 4 and int(restored.ptr) == 1
    restored.enqueue(rows(6))
    queue.enqueue(rows(6))
    assert ids(restored) == ids(queue) == [3, 4, 5, 6]


def test_partially_filled_state_round_trip() -> None:
    queue = FeatureQueue(4, 2)
    queue.enqueue(rows(7))
    restored = FeatureQueue(4, 2)
    restored.load_state_dict(queue.state_dict())
    assert ids(restored) == [7] and len(restored) == 1


@pytest.mark.parametrize("keys", [torch.ones(3, 5), torch.ones(2)])
def test_wrong_key_shape_raises(keys: torch.Tensor) -> None:
    with pytest.raises(ConfigError, match="keys must be"):
        FeatureQueue(4, 2).enqueue(keys)


@pytest.mark.parametrize(("size", "dim"), [(0, 2), (4, 0)])
def test_bad_sizes_raise(size: int, dim: int) -> None:
    with pytest.raises(ConfigError, match="must be >= 1"):
        FeatureQueue(size, dim)
