"""Fitting the training batch to the data.

A batch the training split cannot fill is made smaller, with one warning, instead of failing (an
m-per-class batch needs `batch_size / m` identities) or silently training no step at all (pairs,
triplets and views batches drop an incomplete last batch, so a batch larger than an epoch's
samples yields none). The same rule applies to a preset's default and to an explicit
`--batch-size`: the run never fails for a batch the data cannot fill, the warning names the batch
used, and the run's `config.json` records it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from siamese.errors import DataError
from siamese.training.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchFit:
    """A training batch the data can fill.

    Attributes:
        batch_size: samples (images, pairs or triplets) per step.
        m_per_class: images per identity in an m-per-class batch.
        reason: why the configured batch does not fit; None when it fits and is kept.
        m_changed: `m_per_class` is lower than the configured one.
    """

    batch_size: int
    m_per_class: int
    reason: str | None = None
    m_changed: bool = False

    def message(self) -> str:
        """The one-line warning: the reason, then the batch used (and m, when it changed)."""
        m = f" with m={self.m_per_class}" if self.m_changed else ""
        return f"{self.reason}: using batch {self.batch_size}{m}"


def fit_identity_batch(batch_size: int, m: int, identities: int, samples: int) -> BatchFit:
    """The largest m-per-class batch up to `batch_size` that the data can fill.

    A batch of `batch_size` images holds `batch_size // m` identities of `m` images each, needs that
    many identities with two or more images, and at most `samples` images per epoch. Fewer
    identities are taken first (m is kept); m is lowered only when even two identities of `m`
    images exceed `samples`.

    Args:
        batch_size: configured images per batch, a multiple of `m`.
        m: configured images per identity.
        identities: training identities with two or more genuine images.
        samples: images an epoch draws.

    Raises:
        DataError: fewer than two identities with two or more images, or fewer than 2 samples.

    >>> fit_identity_batch(32, 4, identities=20, samples=400)
    BatchFit(batch_size=32, m_per_class=4, reason=None, m_changed=False)
    >>> fit_identity_batch(32, 4, identities=4, samples=400).message()
    'batch 32 needs 8 identities with m=4; the training split has 4: using batch 16'
    >>> fit_identity_batch(64, 16, identities=2, samples=8).message()  # doctest: +NORMALIZE_WHITESPACE
    'batch 64 needs 4 identities with m=16; the training split has 2;
    batch 64 exceeds the 8 images an epoch draws: using batch 8 with m=4'
    """
    if identities < 2:
        raise DataError(
            f"m-per-class batches need 2 training identities with 2 or more images, the training "
            f"split has {identities}; add images or identities, or use --sampler pairs"
        )
    if samples < 2:
        raise DataError(f"an epoch of {samples} images cannot fill a batch; raise --samples-per-epoch")
    reasons = []
    if batch_size // m > identities:
        needed = f"batch {batch_size} needs {batch_size // m} identities with m={m}"
        reasons.append(f"{needed}; the training split has {identities}")
    if batch_size > samples:
        reasons.append(f"batch {batch_size} exceeds the {samples} images an epoch draws")
    if not reasons:
        return BatchFit(batch_size, m)
    groups = min(batch_size // m, identities, samples // m)
    if groups >= 2:
        return BatchFit(groups * m, m, "; ".join(reasons))
    m_fit = min(m, samples // 2)
    return BatchFit(2 * m_fit, m_fit, "; ".join(reasons), m_changed=True)


def fit_drawn_batch(batch_size: int, samples: int, what: str) -> BatchFit:
    """The batch of pairs, triplets or views batches: at most the `samples` an epoch draws.

    Args:
        batch_size: configured samples per batch.
        samples: samples an epoch draws (the incomplete last batch is dropped).
        what: their name in the message ("pairs", "triplets", "images").

    Raises:
        DataError: fewer than 2 samples.

    >>> fit_drawn_batch(64, 8, "pairs").message()
    'batch 64 exceeds the 8 pairs an epoch draws: using batch 8'
    >>> fit_drawn_batch(16, 100, "pairs").reason is None
    True
    """
    if samples < 2:
        raise DataError(f"an epoch of {samples} {what} cannot fill a batch of 2 or more")
    if batch_size <= samples:
        return BatchFit(batch_size, 0)
    return BatchFit(samples, 0, f"batch {batch_size} exceeds the {samples} {what} an epoch draws")


def fit_batch(config: TrainConfig, samples: int, identities: int) -> TrainConfig:
    """`config` with a training batch its sampler can fill; one warning when the batch changes.

    Args:
        config: the run's configuration.
        samples: pairs, triplets or images one epoch of `config.sampler` draws.
        identities: training identities with two or more genuine images (m-per-class batches).

    Raises:
        DataError: the data cannot fill even the smallest batch.
    """
    b = config.optim.batch_size
    if config.sampler == "mperclass":
        fit = fit_identity_batch(b, config.data.m_per_class, identities, samples)
    else:
        fit = fit_drawn_batch(b, samples, _DRAWS.get(config.sampler, "images"))
    if fit.reason is None:
        return config
    logger.warning(fit.message())
    optim = dataclasses.replace(config.optim, batch_size=fit.batch_size)
    if not fit.m_changed:
        return dataclasses.replace(config, optim=optim)
    data = dataclasses.replace(config.data, m_per_class=fit.m_per_class)
    return dataclasses.replace(config, data=data, optim=optim)


_DRAWS = {"pairs": "pairs", "triplets": "triplets"}
