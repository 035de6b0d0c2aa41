"""lightly's implementation of each self-supervised method, wired into the simplest training loop.

The peer of `benchmarks/selfsup.py`: for SimCLR, MoCo v2, BYOL and SwAV (and the optional SimSiam,
Barlow Twins and VICReg), lightly 1.6's own projection heads, losses and momentum utilities
(`lightly.models.modules`, `lightly.loss`, `lightly.models.utils`, `lightly.utils.scheduler`) on the
same encoder, the same views (our `MultiViewDataset` loader), the same optimiser and
hyper-parameters as ours, trained for a wall-clock budget checked after every step. Only the method
differs, which is what is compared.

Needs the `ssl-ref` (or `dev`) extra: `pip install -e ".[ssl-ref]"`.
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from typing import Any

import torch
from torch import nn

from siamese.training.config import TrainConfig
from siamese.training.methods.registry import METHODS

logger = logging.getLogger("benchmarks.selfsup_peers")


def method_options(config: TrainConfig) -> dict[str, Any]:
    """Our method's and its loss's resolved options: their constructors' defaults, overridden by
    the config's."""
    method = METHODS[config.method.name]
    defaults: dict[str, Any] = {}
    for cls in (method, method.loss_class):
        params = inspect.signature(cls).parameters if cls is not None else {}
        defaults.update({k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty})
    return {**defaults, **config.method_kwargs(), **config.loss_kwargs()}


class LightlyMethod(nn.Module):
    """One lightly method around `encoder`; `loss(views, step, total)` is one training step's loss."""

    def __init__(self, name: str, encoder: nn.Module, options: dict[str, Any]) -> None:
        from lightly import loss
        from lightly.models import modules
        from lightly.models.utils import deactivate_requires_grad

        super().__init__()
        self.name, self.encoder, self.o = name, encoder, options
        dim, hidden, proj = int(encoder.embedding_dim), options["hidden_dim"], options["projection_dim"]
        if name == "simclr":
            self.head = modules.SimCLRProjectionHead(dim, hidden, proj)
            self.criterion: nn.Module = loss.NTXentLoss(options["temperature"])
        elif name == "moco":
            self.head = modules.MoCoProjectionHead(dim, hidden, proj)
            self.criterion = loss.NTXentLoss(
                options["temperature"], memory_bank_size=(options["queue_size"], proj)
            )
        elif name == "byol":
            self.head = modules.BYOLProjectionHead(dim, hidden, proj)
            self.predictor = modules.BYOLPredictionHead(proj, hidden, proj)
            self.criterion = loss.NegativeCosineSimilarity()
        elif name == "swav":
            self.head = modules.SwaVProjectionHead(dim, hidden, proj)
            self.prototypes = modules.SwaVPrototypes(
                proj, options["prototypes"], options["freeze_prototypes"]
            )
            self.criterion = loss.SwaVLoss(
                options["temperature"], options["sinkhorn_iterations"], options["epsilon"]
            )
        elif name == "simsiam":
            self.head = modules.SimSiamProjectionHead(dim, hidden, proj)
            bottleneck = options["predictor_dim"] or max(proj // 4, 1)
            self.predictor = modules.SimSiamPredictionHead(proj, bottleneck, proj)
            self.criterion = loss.NegativeCosineSimilarity()
        elif name == "barlow":
            self.head = modules.BarlowTwinsProjectionHead(dim, hidden, proj)
            self.criterion = loss.BarlowTwinsLoss(lambda_param=options["redundancy_weight"])
        elif name == "vicreg":
            self.head = modules.VICRegProjectionHead(dim, hidden, proj, num_layers=3)
            self.criterion = loss.VICRegLoss(
                lambda_param=options["invariance_weight"],
                mu_param=options["variance_weight"],
                nu_param=options["covariance_weight"],
            )
        else:
            raise ValueError(f"no lightly peer for method {name!r}")
        if name in ("moco", "byol"):
            self.target_encoder = copy.deepcopy(encoder)
            self.target_head = copy.deepcopy(self.head)
            deactivate_requires_grad(self.target_encoder)
            deactivate_requires_grad(self.target_head)

    def _momentum(self, step: int, total: int) -> None:
        from lightly.models.utils import update_momentum
        from lightly.utils.scheduler import cosine_schedule

        total = max(total, 1)  # past the nominal steps the schedule stays at its end value
        m = cosine_schedule(min(step, total), total, self.o["momentum"], self.o["momentum_end"])
        update_momentum(self.encoder, self.target_encoder, m)
        update_momentum(self.head, self.target_head, m)

    def loss(self, views: list[torch.Tensor], step: int, total: int) -> torch.Tensor:
        """The loss of one batch of views (and, for the momentum methods, the target update first)."""
        if self.name == "simclr":
            return self.criterion(self.head(self.encoder(views[0])), self.head(self.encoder(views[1])))
        if self.name == "moco":
            from lightly.models.utils import batch_shuffle, batch_unshuffle

            self._momentum(step, total)
            query = self.head(self.encoder(views[0]))
            with torch.no_grad():
                shuffled, order = batch_shuffle(views[1])
                key = batch_unshuffle(self.target_head(self.target_encoder(shuffled)), order).detach()
            return self.criterion(query, key)
        if self.name == "simsiam":
            z = [self.head(self.encoder(x)) for x in views[:2]]
            p = [self.predictor(zi) for zi in z]
            return 0.5 * (self.criterion(p[0], z[1].detach()) + self.criterion(p[1], z[0].detach()))
        if self.name in ("barlow", "vicreg"):
            return self.criterion(self.head(self.encoder(views[0])), self.head(self.encoder(views[1])))
        if self.name == "byol":
            self._momentum(step, total)
            p = [self.predictor(self.head(self.encoder(x))) for x in views[:2]]
            with torch.no_grad():
                z = [self.target_head(self.target_encoder(x)).detach() for x in views[:2]]
            return 0.5 * (self.criterion(p[0], z[1]) + self.criterion(p[1], z[0]))
        self.prototypes.normalize()
        scores = [
            self.prototypes(nn.functional.normalize(self.head(self.encoder(x)), dim=1), step) for x in views
        ]
        return self.criterion(scores[:2], scores[2:])


def lightly_trainer(
    config: TrainConfig, encoder: nn.Module, device: str
) -> tuple[LightlyMethod, torch.optim.Optimizer]:
    """lightly's `config.method.name` around `encoder` (in training mode) and its AdamW, as ours."""
    method = LightlyMethod(config.method.name, encoder, method_options(config)).to(device).train()
    params = [p for p in method.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    return method, opt


def lightly_step(
    method: LightlyMethod, opt: torch.optim.Optimizer, batch: Any, step: int, total: int, device: str
) -> tuple[int, float]:
    """One training step on a batch of our view loader; (images in the batch, the loss)."""
    views = batch[0]
    views = [v.to(device) for v in (views if isinstance(views, list) else views.unbind(1))]
    loss = method.loss(views, step, total)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return len(views[0]), float(loss.detach())


def pretrain_lightly(
    config: TrainConfig, encoder: nn.Module, loader: Any, budget_s: float, device: str
) -> dict[str, Any]:
    """Train `encoder` with lightly's `config.method.name` until `budget_s` seconds have passed.

    Same optimiser (AdamW, `config.optim.lr`, `weight_decay`) at a constant learning rate; the
    momentum schedules run over the config's nominal `epochs * len(loader)` steps, like ours.

    Returns:
        steps, images seen, seconds, images per second and the last loss.
    """
    method, opt = lightly_trainer(config, encoder, device)
    total = config.optim.epochs * len(loader)
    start, step, images, last = time.perf_counter(), 0, 0, float("nan")
    while time.perf_counter() - start < budget_s:
        for batch in loader:
            n, last = lightly_step(method, opt, batch, step, total, device)
            step, images = step + 1, images + n
            if time.perf_counter() - start >= budget_s:
                break
    seconds = time.perf_counter() - start
    logger.info("lightly %s: %d steps, %.0f images/s", config.method.name, step, images / seconds)
    return {
        "steps": step,
        "images": images,
        "seconds": seconds,
        "images_per_s": images / seconds,
        "loss": last,
    }
