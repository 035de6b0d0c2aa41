"""The part every exact pair loss shares: pairs from labels or a miner, then the distance matrix."""

from __future__ import annotations

from typing import ClassVar

import torch
from pytorch_metric_learning.losses import GenericPairLoss
from pytorch_metric_learning.reducers import MeanReducer
from pytorch_metric_learning.utils import common_functions as c_f
from pytorch_metric_learning.utils import loss_and_miner_utils as lmu

from siamese.losses.miners import IndicesTuple


class PairLoss(GenericPairLoss):
    """pml's `GenericPairLoss` with the exact emptiness rule of each subclass.

    pml returns zero when every index tensor has length <= 1; here a loss is zero only when
    `has_terms` says the pairs give it nothing to average. Reduction: mean (`MeanReducer`).

    Attributes:
        samplers: the batch samplers this loss trains with, its natural one first.
    """

    samplers: ClassVar[tuple[str, ...]] = ("pairs", "triplets", "mperclass")

    def has_terms(self, indices_tuple: IndicesTuple) -> bool:
        """Whether the pairs `(a1, p, a2, n)` contribute at least one term."""
        a1, _, a2, _ = indices_tuple
        return len(a1) > 0 or len(a2) > 0

    def compute_loss(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor | None,
    ) -> dict:
        c_f.labels_or_indices_tuple_required(labels, indices_tuple)
        indices_tuple = lmu.convert_to_pairs(indices_tuple, labels, ref_labels)
        if not self.has_terms(indices_tuple):
            return self.zero_losses()
        mat = self.distance(embeddings, ref_emb)  # (B, B_ref)
        return self.loss_method(mat, indices_tuple)

    def get_default_reducer(self) -> MeanReducer:
        return MeanReducer()
