"""Margin-softmax losses: ArcFace, CosFace and sub-center ArcFace, on pytorch-metric-learning.

Each holds one learned weight vector per training identity (``W``, the class weights) and is a
softmax classifier over cosine similarities with a margin on the true class. The class weights
train with the encoder (their own learning rate: `lr_multiplier`, read by
`siamese.training.SupervisedMethod.param_groups`) and exist only for training identities, so they
are training-only: checkpoints and exports keep the encoder alone, and verification compares
embeddings with the cosine distance.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pytorch_metric_learning import losses as pml_losses

from siamese.errors import ConfigError
from siamese.losses.miners import IndicesTuple

# s: PML's (and the papers') 64 suits face sets of ~10^4-10^5 identities. On our small CPU runs
# (tens to hundreds of identities, few epochs) 64 saturates the softmax from the first steps; 16
# still lets the true class reach p = 0.9 against up to ~10^5 classes at cos(theta + m) = cos(0.5)
# (the NormFace/AdaCos bound s >= ln((C - 1) * p / (1 - p)) / cos(theta + m)).
DEFAULT_SCALE = 16.0
# The class weights start random and see each identity only a few times per epoch: 10x the
# encoder's learning rate, as is common for classifier heads and proxies.
DEFAULT_LR_MULTIPLIER = 10.0


class MarginSoftmaxMixin:
    """What the three margin-softmax losses share (put first in the bases, before pml's class).

    `forward(embeddings, labels, indices_tuple=None)` ignores `indices_tuple` (a classification
    loss scores every labelled image against every class) and rows whose label is not a training
    class, ``0 <= label < num_classes`` (skilled forgeries, which carry labels of their own, and
    unlabelled images): they have no class weight. A batch without any training class gives 0.

    Attributes:
        samplers: the batch samplers these losses train with, class-balanced batches first.
        needs_classes: built with `num_classes` and `embedding_size` (`siamese.losses.get_loss`
            callers pass them: the training identities and the encoder's embedding size).
        distances: the distances they train with, the verification default first: cosine only.
    """

    samplers: ClassVar[tuple[str, ...]] = ("mperclass", "views", "pairs", "triplets")
    needs_classes: ClassVar[bool] = True
    distances: ClassVar[tuple[str, ...]] = ("cosine",)

    num_classes: int
    lr_multiplier: float
    W: torch.nn.Parameter

    def _check(self, name: str, num_classes: int, embedding_size: int, scale: float) -> None:
        if num_classes < 2:
            raise ConfigError(f"{name} needs at least 2 training identities, got {num_classes}")
        if embedding_size < 1:
            raise ConfigError(f"{name} needs an embedding size >= 1, got {embedding_size}")
        if not scale > 0:
            raise ConfigError(f"scale must be > 0, got {scale!r}")

    def _set_options(self, margin: float, lr_multiplier: float, distance: str) -> None:
        """Validate the options every margin-softmax loss takes and keep them as attributes."""
        if distance != "cosine":
            raise ConfigError(
                f"{type(self).__name__} compares embeddings with class weights by angle: it trains "
                f"with the cosine distance only, not {distance!r} (leave --distance unset)"
            )
        if not lr_multiplier > 0:
            raise ConfigError(f"lr multiplier must be > 0, got {lr_multiplier!r}")
        self.margin = float(margin)  # radians for ArcFace (pml keeps it in radians after its init)
        self.lr_multiplier = float(lr_multiplier)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean loss over the rows of `embeddings` `(B, D)` whose `labels` `(B,)` are training classes."""
        if labels is None:
            raise ValueError(f"{type(self).__name__} needs class labels")
        if ref_emb is not None or ref_labels is not None:
            raise ValueError(f"{type(self).__name__} takes no reference embeddings")
        keep = (labels >= 0) & (labels < self.num_classes)  # (B,)
        if not bool(keep.any()):
            return (embeddings.sum() + self.W.sum()) * 0.0  # nothing to classify; keeps the graph
        return super().forward(embeddings[keep], labels[keep])  # type: ignore[misc]

    def extra_repr(self) -> str:
        scale = getattr(self, "scale", None)
        return f"num_classes={self.num_classes}, margin={self.margin}, scale={scale}"


def _check_arc_margin(margin: float) -> None:
    if not 0 <= margin < math.pi / 2:
        degrees = margin > 2  # most likely given in degrees, as pml takes it
        hint = f" (margins are in radians: {margin} degrees is {math.radians(margin):.4f})" if degrees else ""
        raise ConfigError(f"ArcFace margin must be in [0, pi/2) radians, got {margin!r}{hint}")


class ArcFaceLoss(MarginSoftmaxMixin, pml_losses.ArcFaceLoss):
    """Additive angular margin loss (ArcFace, Deng et al. 2019).

    With ``theta_j`` the angle between an embedding and class weight ``W_j`` (both L2-normalised),
    ``y`` its class, ``s`` the scale and ``m`` the margin::

        L = -log( e^{s cos(theta_y + m)} / (e^{s cos(theta_y + m)} + sum_{j != y} e^{s cos theta_j}) )

    averaged over the batch (pml's implementation, with its margin given in radians here).

    Args:
        num_classes: training identities C.
        embedding_size: the encoder's embedding size D; ``W`` is ``(D, C)``.
        margin: ``m`` in radians (the paper's 0.5 = pml's default 28.6 degrees).
        scale: ``s`` (the paper's 64 is for large face sets; see `DEFAULT_SCALE`).
        lr_multiplier: learning rate of ``W`` relative to the encoder's.
        distance: must be ``"cosine"``.

    Raises:
        ConfigError: fewer than 2 classes, a margin outside ``[0, pi/2)``, ``scale <= 0``,
            ``lr_multiplier <= 0`` or a distance other than cosine.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.5,
        scale: float = DEFAULT_SCALE,
        lr_multiplier: float = DEFAULT_LR_MULTIPLIER,
        distance: str = "cosine",
    ) -> None:
        self._check("arcface", num_classes, embedding_size, scale)
        _check_arc_margin(margin)
        super().__init__(
            num_classes=int(num_classes),
            embedding_size=int(embedding_size),
            margin=math.degrees(margin),
            scale=float(scale),
        )
        self._set_options(margin, lr_multiplier, distance)


class CosFaceLoss(MarginSoftmaxMixin, pml_losses.CosFaceLoss):
    """Additive cosine margin loss (CosFace / AM-Softmax, Wang et al. 2018).

    As `ArcFaceLoss` with the true class's logit ``s (cos theta_y - m)``::

        L = -log( e^{s (cos theta_y - m)} / (e^{s (cos theta_y - m)} + sum_{j != y} e^{s cos theta_j}) )

    Args:
        num_classes: training identities C.
        embedding_size: the encoder's embedding size D; ``W`` is ``(D, C)``.
        margin: ``m``, subtracted from the cosine (the paper's and pml's 0.35).
        scale: ``s`` (the paper's 64 is for large face sets; see `DEFAULT_SCALE`).
        lr_multiplier: learning rate of ``W`` relative to the encoder's.
        distance: must be ``"cosine"``.

    Raises:
        ConfigError: fewer than 2 classes, a margin outside ``[0, 1)``, ``scale <= 0``,
            ``lr_multiplier <= 0`` or a distance other than cosine.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.35,
        scale: float = DEFAULT_SCALE,
        lr_multiplier: float = DEFAULT_LR_MULTIPLIER,
        distance: str = "cosine",
    ) -> None:
        self._check("cosface", num_classes, embedding_size, scale)
        if not 0 <= margin < 1:
            raise ConfigError(f"CosFace margin must be in [0, 1) (a cosine), got {margin!r}")
        super().__init__(int(num_classes), int(embedding_size), margin=float(margin), scale=float(scale))
        self._set_options(margin, lr_multiplier, distance)


class SubCenterArcFaceLoss(MarginSoftmaxMixin, pml_losses.SubCenterArcFaceLoss):
    """Sub-center ArcFace (Deng et al. 2020): K weight vectors (sub-centres) per class.

    As `ArcFaceLoss` with ``cos theta_j = max_k cos theta_{j,k}``, the cosine to the nearest of
    class j's K sub-centres; noisy or multi-modal identities can settle on a sub-centre of their
    own. ``W`` is ``(D, C * K)``, column ``c * K + k`` being sub-centre k of class c. K = 1 is
    ArcFace.

    Args:
        num_classes: training identities C.
        embedding_size: the encoder's embedding size D.
        margin: ``m`` in radians (the paper's 0.5).
        scale: ``s`` (see `DEFAULT_SCALE`).
        sub_centers: K (the paper's and pml's 3).
        lr_multiplier: learning rate of ``W`` relative to the encoder's.
        distance: must be ``"cosine"``.

    Raises:
        ConfigError: as `ArcFaceLoss`, or ``sub_centers < 1``.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float = 0.5,
        scale: float = DEFAULT_SCALE,
        sub_centers: int = 3,
        lr_multiplier: float = DEFAULT_LR_MULTIPLIER,
        distance: str = "cosine",
    ) -> None:
        self._check("subcenter", num_classes, embedding_size, scale)
        _check_arc_margin(margin)
        if isinstance(sub_centers, bool) or int(sub_centers) != sub_centers or sub_centers < 1:
            raise ConfigError(f"sub centers must be an integer >= 1, got {sub_centers!r}")
        super().__init__(
            num_classes=int(num_classes),
            embedding_size=int(embedding_size),
            margin=math.degrees(margin),
            scale=float(scale),
            sub_centers=int(sub_centers),
        )
        self._set_options(margin, lr_multiplier, distance)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sub_centers={self.sub_centers}"
