"""What a training method is: one step from a batch to a loss, plus its post-optimiser updates.

The trainer knows nothing about pairs, views, queues or momentum encoders; it calls a `Method`.
A method owns every module it trains (encoder, loss parameters, heads, momentum copies) as
sub-modules, so the optimiser sees all its parameters and the training state saves all its
buffers (queues, EMA weights, prototypes). The `encoder` is the one module that checkpoints and
exports keep; everything else is training-only.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.twin import TwinNetwork
from siamese.names import DISTANCES, check_choice

IndicesTuple = tuple[torch.Tensor, ...]  # pml pairs (a1, p, a2, n) or triplets (a, p, n)


class Batch(NamedTuple):
    """One batch as the loaders' collate functions emit it.

    Attributes:
        images: `(N, C, H, W)` single-view images, or `(N, V, C, H, W)` V augmented views of each
            of N images (multi-view batches, `siamese.data.multiview_collate`).
        labels: `(N,)` class labels, or None; -1 marks an unlabelled image.
        indices: optional index tuple naming the pairs or triplets of the batch.
    """

    images: torch.Tensor | list[torch.Tensor]
    labels: torch.Tensor | None = None
    indices: IndicesTuple | None = None

    def to(self, device: torch.device) -> Batch:
        """The same batch on `device`."""
        labels = None if self.labels is None else self.labels.to(device)
        indices = None if self.indices is None else tuple(t.to(device) for t in self.indices)
        if isinstance(self.images, list):
            return Batch([x.to(device) for x in self.images], labels, indices)
        return Batch(self.images.to(device), labels, indices)

    def view_list(self) -> list[torch.Tensor]:
        """The views as a list of `(N, C, H, W)` batches (multi-crop batches are lists already)."""
        if isinstance(self.images, list):
            return self.images
        return list(self.images.unbind(1)) if self.images.ndim == 5 else [self.images]

    def image_tensor(self) -> torch.Tensor:
        """The images as one tensor, `(N, C, H, W)` or `(N, V, C, H, W)`; a multi-crop list is not one."""
        if isinstance(self.images, list):
            raise TypeError("a multi-crop batch (a list of differently sized views) is not one image tensor")
        return self.images

    def flat(self) -> Batch:
        """Views as extra rows: image b's view v becomes row `b * V + v`, its label repeated."""
        if isinstance(self.images, list) or self.images.ndim != 5:
            return self
        n, v = self.images.shape[:2]
        labels = None if self.labels is None else self.labels.repeat_interleave(v)
        return Batch(self.images.reshape(n * v, *self.images.shape[2:]), labels, self.indices)


class StepOutput(NamedTuple):
    """What a step returns to the trainer.

    Attributes:
        loss: the scalar loss (with its graph when training).
        embeddings: `(N, D)` embeddings of the batch's images, used to score its pairs.
        indices: the index tuple whose pairs are scored in evaluation (None: nothing to score).
    """

    loss: torch.Tensor
    embeddings: torch.Tensor
    indices: IndicesTuple | None = None


class Method(nn.Module):
    """Base class of training methods: an encoder and a loss, plus whatever else the method trains.

    Subclasses implement `training_step` and register their extra modules as attributes;
    `on_before_optimizer_step`/`on_after_optimizer_step` are where gradients are adjusted (e.g.
    frozen prototypes) and momentum copies, queues or prototype norms are updated. A subclass's
    own options are the keywords of its constructor after `encoder`, `loss` and `distance`, with
    their defaults there (`siamese pretrain --list-method-args NAME` prints them).

    Class attributes:
        loss_class: the loss the method trains with, built with its own options (`--loss-arg`)
            when no `loss` is given; None: the loss is chosen by name (`--loss`, supervised).
        default_distance: the pair distance of verification when none is configured; None: the
            first of the loss's `distances` (supervised: cosine for the margin-softmax losses), else
            Euclidean.
        uses_labels: whether training reads the labels (False: self-supervised).
        multi_crop: whether `training_step` uses views beyond the first two (small crops).

    Args:
        encoder: the shared encoder `(B, C, H, W) -> (B, D)` that checkpoints and exports keep.
        loss: the training objective, a module (so any parameters it holds are trained and
            saved with the method); None: a `loss_class` with its defaults.
        distance: the pair distance used for verification ("euclidean" or "cosine"); None:
            `default_distance`, else the loss's.
    """

    loss_class: ClassVar[type[nn.Module] | None] = None
    default_distance: ClassVar[str | None] = "cosine"
    uses_labels: ClassVar[bool] = False
    multi_crop: ClassVar[bool] = False

    def __init__(
        self, encoder: nn.Module, loss: nn.Module | None = None, distance: str | None = None
    ) -> None:
        super().__init__()
        if loss is None:
            if self.loss_class is None:
                raise ConfigError(f"{type(self).__name__} needs a loss")
            loss = self.loss_class()
        distance = distance or self.default_distance or getattr(loss, "distances", DISTANCES)[0]
        check_choice(distance, DISTANCES, "distance")
        self.encoder = encoder
        self.loss = loss
        self.distance = distance

    def twin(self) -> TwinNetwork:
        """The verification model that checkpoints and exports keep: the encoder and the distance."""
        return TwinNetwork(self.encoder, distance=self.distance)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder embeddings `(N, D)` of single-view images `(N, C, H, W)`."""
        return self.encoder(images)

    def training_step(self, batch: Batch) -> StepOutput:
        """The loss of one training batch (and the embeddings it computed)."""
        raise NotImplementedError

    def evaluation_step(self, batch: Batch) -> StepOutput:
        """Embed a validation batch (single-view images, index tuple of pairs to score).

        The default embeds with the encoder and reports no loss (NaN); methods whose loss is
        defined on such batches override it.
        """
        emb = self.embed(batch.image_tensor())  # (N, D)
        return StepOutput(torch.tensor(float("nan")), emb, batch.indices)

    def on_before_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after `backward()`, before the optimiser step (`step` counts from 0)."""

    def on_after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called after the optimiser step: EMA targets, queues, prototype normalisation."""

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Every trainable parameter at `lr`, except the loss's own parameters, if any (class
        weights, proxies): a group of their own at `lr * loss.lr_multiplier` (default 1)."""
        held = list(self.loss.parameters()) if isinstance(self.loss, nn.Module) else []
        own = [p for p in held if p.requires_grad]
        ids = {id(p) for p in own}
        rest = [p for p in self.parameters() if p.requires_grad and id(p) not in ids]
        groups = [{"params": rest, "lr": lr}]
        if own:
            groups.append({"params": own, "lr": lr * float(getattr(self.loss, "lr_multiplier", 1.0))})
        return groups

    def embedding_dim(self) -> int:
        """D, the size of the encoder's embeddings."""
        dim = self.encoder.embedding_dim  # an `Encoder`'s int attribute
        if not isinstance(dim, int):
            raise TypeError(f"the encoder ({type(self.encoder).__name__}) has no int embedding_dim")
        return dim

    def training_only(self) -> list[str]:
        """Names of the sub-modules that checkpoints and exports drop."""
        return [name for name, _ in self.named_children() if name != "encoder"]


def check_sizes(**sizes: int | None) -> None:
    """Raise a `ConfigError` for a layer size (or count) below 1; None is not checked.

    >>> check_sizes(projection_dim=8, predictor_dim=None)
    """
    for name, value in sizes.items():
        if value is not None and value < 1:
            raise ConfigError(f"{name.replace('_', ' ')} must be >= 1, got {value}")
