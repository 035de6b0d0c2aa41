"""Supervised contrastive loss (Khosla et al. 2020), with optional hard-negative weighting."""

from __future__ import annotations

from typing import ClassVar

import torch

from siamese.errors import ConfigError
from siamese.losses.miners import IndicesTuple, make_distance
from siamese.losses.pair_loss import PairLoss


class SupConLoss(PairLoss):
    """Supervised contrastive loss, the L_out form, with Robinson et al. (2021) hardness weighting.

    For each anchor ``i`` with at least one positive, with ``s`` the similarity and ``tau`` the
    temperature::

        L_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip/tau) / Z_i )
        Z_i = sum_{p in P(i)} exp(s_ip/tau) + sum_{n in N(i)} w_in * exp(s_in/tau)
        w_in = |N(i)| * softmax_{n in N(i)}(beta * s_in)

    and the loss is the mean of ``L_i`` over anchors that have positives. ``beta = 0`` gives
    ``w = 1``, plain SupCon, where ``Z_i`` sums over every ``a != i``. The weights are not detached
    (as in Robinson et al.'s reference code), so gradients also flow through them.

    Without ``indices_tuple``, ``P(i)`` and ``N(i)`` are all same-label and different-label samples.
    With one, ``P(i)`` holds only its positive pairs anchored at ``i`` and ``N(i)`` only its negative
    pairs, so mined hard negatives restrict the denominator.

    Embeddings may be ``(B, D)`` with labels ``(B,)``, or multi-view ``(B, V, D)`` with labels
    ``(B,)``: views are flattened to row ``b * V + v`` (an ``indices_tuple`` indexes those rows) and
    views of one image are positives of each other. Multi-view without labels treats each image as
    its own class (the self-supervised NT-Xent case).

    Args:
        temperature: ``tau``, scales the similarities.
        beta: hardness concentration of the negative weights; 0 disables weighting.
        distance: ``"cosine"``: ``s`` = cosine similarity; ``"euclidean"``: ``s`` = minus the
            Euclidean distance between L2-normalised embeddings.

    Raises:
        ConfigError: if ``temperature <= 0``, ``beta < 0`` or the distance is unknown.
    """

    samplers: ClassVar[tuple[str, ...]] = ("mperclass", "pairs", "triplets", "views")

    def __init__(self, temperature: float = 0.1, beta: float = 0.0, distance: str = "cosine") -> None:
        if not temperature > 0:
            raise ConfigError(f"temperature must be > 0, got {temperature!r}")
        if not beta >= 0:
            raise ConfigError(f"beta must be >= 0, got {beta!r}")
        super().__init__(mat_based_loss=True, distance=make_distance(distance))
        self.temperature = float(temperature)
        self.beta = float(beta)
        self.add_to_recordable_attributes(list_of_names=["temperature", "beta"], is_stat=False)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss; see the class docstring. ``ref_emb`` must be 2-D."""
        if embeddings.ndim == 3:
            batch, views, dim = embeddings.shape  # (B, V, D)
            if labels is None:
                labels = torch.arange(batch, device=embeddings.device)
            embeddings = embeddings.reshape(batch * views, dim)  # (B*V, D)
            labels = labels.repeat_interleave(views)  # (B*V,)
        return super().forward(embeddings, labels, indices_tuple, ref_emb, ref_labels)

    def has_terms(self, indices_tuple: IndicesTuple) -> bool:
        return len(indices_tuple[0]) > 0  # an anchor needs a positive

    def _compute_loss(self, mat: torch.Tensor, pos_mask: torch.Tensor, neg_mask: torch.Tensor) -> dict:
        sim = mat if self.distance.is_inverted else -mat  # (B, B_ref), larger = closer
        pos_mask, neg_mask = pos_mask.bool(), neg_mask.bool()
        anchors = torch.nonzero(pos_mask.any(dim=1)).squeeze(1)  # (A,) anchors with positives
        sim, pos_mask, neg_mask = sim[anchors], pos_mask[anchors], neg_mask[anchors]  # (A, B_ref)
        logits = sim / self.temperature
        neg_logits = logits + self._log_negative_weights(sim, neg_mask) if self.beta > 0 else logits
        never = torch.full_like(logits, float("-inf"))
        terms = torch.where(pos_mask, logits, torch.where(neg_mask, neg_logits, never))
        log_z = torch.logsumexp(terms, dim=1, keepdim=True)  # (A, 1), finite: each row has a positive
        log_prob = torch.where(pos_mask, logits - log_z, torch.zeros_like(logits))
        losses = -log_prob.sum(dim=1) / pos_mask.sum(dim=1)  # (A,)
        return {"loss": {"losses": losses, "indices": anchors, "reduction_type": "element"}}

    def _log_negative_weights(self, sim: torch.Tensor, neg_mask: torch.Tensor) -> torch.Tensor:
        """``log w_in = log |N(i)| + log softmax_n(beta * s_in)``; only entries in ``neg_mask`` are used."""
        scores = torch.where(neg_mask, self.beta * sim, torch.full_like(sim, float("-inf")))  # (A, B_ref)
        # Rows without negatives are all -inf; give them zeros so logsumexp (and its grad) stays finite.
        scores = torch.where(neg_mask.any(dim=1, keepdim=True), scores, torch.zeros_like(sim))
        log_softmax = scores - torch.logsumexp(scores, dim=1, keepdim=True)
        n_neg = neg_mask.sum(dim=1, keepdim=True).clamp(min=1).to(sim.dtype)  # (A, 1)
        return torch.log(n_neg) + log_softmax

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, beta={self.beta}"
