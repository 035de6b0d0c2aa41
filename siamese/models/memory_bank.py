"""A FIFO queue of past keys, the negatives of MoCo (and the optional queue of SwAV)."""

from __future__ import annotations

import torch
from torch import nn

from siamese.errors import ConfigError


class FeatureQueue(nn.Module):
    """A fixed-size FIFO of detached feature rows, saved in ``state_dict``.

    The queue starts empty and :meth:`features` returns only the rows filled so far, so no random
    placeholder ever acts as a negative. Ordering contract: in each step compute the loss with
    :meth:`features` first, then :meth:`enqueue` this batch's keys, so a batch's own keys are never
    among its negatives (this is how MoCo's ``_dequeue_and_enqueue`` is used).

    Buffers: ``queue`` ``(size, D)``, ``ptr`` (the next row to write) and ``filled`` (rows in use),
    both long scalars; ``state_dict``/``load_state_dict`` round-trip all three.

    Args:
        size: maximum number of rows (MoCo: 65536).
        dim: feature size ``D``.

    Raises:
        ConfigError: if ``size`` or ``dim`` is below 1.
    """

    queue: torch.Tensor
    ptr: torch.Tensor
    filled: torch.Tensor

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ConfigError(f"queue size and dim must be >= 1, got size={size!r}, dim={dim!r}")
        self.size, self.dim = size, dim
        self.register_buffer("queue", torch.zeros(size, dim))  # (size, D)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.filled)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Append ``keys`` ``(N, D)``, detached, overwriting the oldest rows once full.

        A batch that crosses the end of the buffer wraps around to its start. A batch of more than
        ``size`` rows keeps only its newest (last) ``size`` rows.

        Raises:
            ConfigError: if ``keys`` is not ``(N, D)``.
        """
        if keys.ndim != 2 or keys.shape[1] != self.dim:
            raise ConfigError(f"keys must be (N, {self.dim}), got {tuple(keys.shape)}")
        keys = keys.detach()[-self.size :].to(self.queue.dtype)  # (n, D), n <= size
        n = keys.shape[0]
        rows = (int(self.ptr) + torch.arange(n, device=self.queue.device)) % self.size  # (n,)
        self.queue[rows] = keys
        self.ptr.fill_((int(self.ptr) + n) % self.size)
        self.filled.fill_(min(int(self.filled) + n, self.size))

    def features(self) -> torch.Tensor:
        """The filled rows, oldest first, ``(len(self), D)``.

        The result is a copy, so a later :meth:`enqueue` does not change it, and a loss built on it
        can still be backpropagated after enqueueing.
        """
        if int(self.filled) < self.size:
            return self.queue[: int(self.filled)].clone()  # not yet wrapped: rows 0..filled-1
        ptr = int(self.ptr)
        return torch.cat([self.queue[ptr:], self.queue[:ptr]])  # (size, D), oldest first

    def extra_repr(self) -> str:
        return f"size={self.size}, dim={self.dim}"
