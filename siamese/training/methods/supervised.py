"""Supervised verification: encoder -> (miner) -> metric loss on labelled batches."""

from __future__ import annotations

from typing import Any

from torch import nn

from siamese.training.methods.base import Batch, Method, StepOutput


class SupervisedMethod(Method):
    """A metric loss on class labels: margin (pairs), SupCon (m-per-class batches) or triplet.

    Args:
        encoder: the shared encoder.
        loss: called as `loss(embeddings, labels, indices_tuple)`; a module, so any parameters it
            holds (class proxies, ...) are trained and saved with the method.
        miner: optional pml miner applied to batches that carry no index tuple.
        distance: pair distance of verification.
    """

    def __init__(self, encoder: nn.Module, loss: Any, miner: Any = None, distance: str = "euclidean") -> None:
        super().__init__(encoder, distance)
        self.loss = loss
        self.miner = miner

    def training_step(self, batch: Batch) -> StepOutput:
        batch = batch.flat()
        emb = self.embed(batch.images)  # (N, D)
        indices = batch.indices
        if indices is None and self.miner is not None:
            indices = self.miner(emb, batch.labels)
        return StepOutput(self.loss(emb, batch.labels, indices), emb, indices)

    def evaluation_step(self, batch: Batch) -> StepOutput:
        return self.training_step(batch)
