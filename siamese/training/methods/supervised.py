"""Supervised verification: encoder -> (miner) -> metric loss on labelled batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from siamese.models.tta import tta_embed
from siamese.names import TTAS, check_choice
from siamese.training.distributed import gather, gather_with_grad, row_offset
from siamese.training.methods.base import Batch, Method, StepOutput


class SupervisedMethod(Method):
    """A metric loss on class labels: margin (pairs), SupCon (m-per-class batches), triplet, or a
    margin-softmax loss (ArcFace, CosFace, sub-center ArcFace) with class weights.

    Args:
        encoder: the shared encoder.
        loss: called as `loss(embeddings, labels, indices_tuple)`; a module, so any parameters it
            holds (class weights, proxies, ...) are trained and saved with the method (in the
            training state, never in checkpoints), at `lr * loss.lr_multiplier` (default 1).
        miner: optional pml miner applied to batches that carry no index tuple.
        distance: pair distance of verification; None = the loss's first (`distances`), else euclidean.
        tta: test-time augmentation of the embeddings that evaluation scores ("none" or "flip",
            `siamese.models.tta`); training never uses it.
    """

    default_distance = None
    uses_labels = True

    def __init__(
        self,
        encoder: nn.Module,
        loss: Any,
        miner: Any = None,
        distance: str | None = None,
        tta: str = "none",
    ) -> None:
        super().__init__(encoder, loss, distance)
        self.miner = miner
        self.tta = check_choice(tta, TTAS, "test-time augmentation")

    def training_step(self, batch: Batch) -> StepOutput:
        """The loss over the global batch: in a data-parallel run every rank's embeddings, labels
        and pairs are gathered first, so pairs, mined negatives and class logits span all ranks."""
        return self._step(batch, everywhere=True)

    def _step(self, batch: Batch, everywhere: bool) -> StepOutput:
        """The loss of a batch: the global one (`everywhere`, training) or this process's alone
        (evaluation, which rank 0 runs by itself)."""
        batch = batch.flat()
        emb = self.embed(batch.image_tensor())  # (n, D)
        labels, indices = batch.labels, batch.indices
        if everywhere:
            offset = row_offset(len(emb))
            emb, labels = gather_with_grad(emb), None if labels is None else gather(labels)  # (N, D)
            indices = None if indices is None else tuple(gather(t + offset) for t in indices)
        if indices is None and self.miner is not None:
            indices = self.miner(emb, labels)
        return StepOutput(self.loss(emb, labels, indices), emb, indices)

    def evaluation_step(self, batch: Batch) -> StepOutput:
        """The training step's loss and embeddings on a validation batch, with two exceptions: a
        loss with class weights has none for validation identities (its loss is reported as NaN),
        and with `tta` the scored embeddings are the augmented ones (the loss is then theirs)."""
        classifies = bool(getattr(self.loss, "needs_classes", False))
        if self.tta == "none" and not classifies:
            return self._step(batch, everywhere=False)
        batch = batch.flat()
        emb = tta_embed(self.encoder, batch.image_tensor(), self.tta)  # (N, D)
        loss = torch.tensor(float("nan")) if classifies else self.loss(emb, batch.labels, batch.indices)
        return StepOutput(loss, emb, batch.indices)
