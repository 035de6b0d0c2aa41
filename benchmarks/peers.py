"""Two peer recipes trained on exactly our splits, inputs and wall-clock budget.

- `pairbce`: the pytorch/examples `siamese_network` recipe. A torchvision resnet18 (no pretrained
  weights) with a 1-channel `conv1` (its own 3-channel one for colour presets) and no `fc` embeds each
  image of a pair in a separate pass; the two 512-d features are concatenated and classified by
  Linear(1024, 256) -> ReLU -> Linear(256, 1) -> sigmoid, trained with BCE on random 50/50
  genuine/impostor pairs, Adadelta (lr 1.0) and StepLR(step_size=1, gamma=0.7) per epoch (an epoch =
  as many pairs as training images). The pair score is the sigmoid's input (the logit): it ranks pairs
  exactly like the sigmoid output, but does not saturate into ties at 0.0/1.0 in float32, which would
  only hurt this recipe's EER and AUC.
- `pml`: a plain pytorch-metric-learning recipe. A resnet18 embedder (`conv1` as above, `fc` ->
  Linear(512, 128)) trained with `losses.ContrastiveLoss()` on the pairs `miners.MultiSimilarityMiner()`
  picks from `samplers.MPerClassSampler(labels, m=4)` batches, Adam lr 1e-3. The pair score is minus
  the euclidean distance of the L2-normalised embeddings (the distance the loss trains by default).

- `signet`: SigNet's recipe (Dey et al. 2017) rebuilt from the library's parts, trained by our own
  loop: its CNN (the `signet` encoder) at its 155x220 input (the preset's preprocessing otherwise),
  no L2 normalisation, the exact Hadsell loss
  (margin 1, euclidean distance) on genuine/skilled-forgery pairs (`forgery_fraction=1`), RMSprop
  (lr 1e-4, rho 0.9, eps 1e-8, momentum 0.9, weight decay 5e-4), batches of 128 pairs. It plans
  its schedule for the budget with `minutes` (the library's cosine decay of the learning rate,
  without warm-up), and is scored by the euclidean distance like the paper. Signature presets only.

All of them see the preset's train transform while training and its eval transform at test time
(`siamese.data.get_transform`), so their inputs are identical to ours. With skilled forgeries (CEDAR),
`pairbce` draws impostors like our pair sampler (half of them forgeries of the anchor's writer) and
`pml` labels the forgeries of writer k as one extra class "forged k". Each trains until the time
budget is spent, checked after every batch, and is scored with its final weights.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from common import (
    EmbeddingScorer,
    OursResult,
    Pairs,
    PairSet,
    Scorer,
    embed_paths,
    evaluate_method,
    input_shape,
    parse_overrides,
    peer_names,
    reference_counts,
    train_ours,
)
from pytorch_metric_learning import losses, miners, samplers
from torch import nn
from torch.utils.data import DataLoader, Dataset

from siamese.data import ImageIndex, ImageLoader, PairDataset, Split, get_transform, pair_collate

logger = logging.getLogger("benchmarks.peers")

PEERS = {
    "pairbce": "pytorch/examples siamese_network (resnet18, concat head, BCE)",
    "pml": "pytorch-metric-learning (resnet18, Contrastive + MultiSimilarity miner)",
}
RECIPES = {"signet": "SigNet's recipe rebuilt (its CNN, Hadsell loss, RMSprop)"}
"""Peers built from the library's own parts, trained like ours with their own options."""
SIGNET = {
    "image_size": (155, 220),  # SigNet's input, whatever the preset's
    "encoder": "signet",
    "embedding_dim": 128,
    "normalize": False,
    "loss": "margin",
    "margin": 1.0,
    "distance": "euclidean",
    "sampler": "pairs",
    "forgery_fraction": 1.0,
    "optimizer": "rmsprop",
    "lr": 1e-4,
    "weight_decay": 5e-4,
    "warmup_epochs": 0.0,
    "batch_size": 128,
}
"""The training options of the `signet` recipe (over the preset's data options)."""
RECIPE_OPTIONS = {"signet": SIGNET}
"""Each recipe's training options, by the names of `RECIPES`."""
SCORE_BATCH = 4096
SMOKE = {"options": {"epochs": 1, "samples_per_epoch": 64, "eval_pairs": 32}, "budget": 4.0, "peer_batch": 8}
"""What `compare_on_fold` uses with `--smoke`: our training options, the peers' budget (s) and batch."""


def resnet18_net(out_dim: int | None, channels: int = 1) -> nn.Module:
    """torchvision resnet18 (random init) for `channels`-channel input (a 1-channel `conv1` for
    grayscale); `fc` removed, or Linear(512, out_dim)."""
    net = torchvision.models.resnet18(weights=None)
    if channels != 3:
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity() if out_dim is None else nn.Linear(512, out_dim)
    return net


class PairClassifier(nn.Module):
    """pytorch/examples' SiameseNetwork: two encoder passes, concatenated features, MLP -> P(same)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.encoder = resnet18_net(None, channels)
        self.head = nn.Sequential(nn.Linear(1024, 256), nn.ReLU(inplace=True), nn.Linear(256, 1))
        for m in self.head:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.constant_(m.bias, 0.01)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Probability that each pair is genuine, `(B,)`."""
        f1, f2 = self.encoder(x1), self.encoder(x2)  # (B, 512) each, two separate passes
        return torch.sigmoid(self.head(torch.cat([f1, f2], dim=1))).squeeze(1)

    @torch.no_grad()
    def head_logits(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """Logit of P(same) for precomputed encoder features `(P, 512)` of both images, `(P,)`."""
        return self.head(torch.cat([f1, f2], dim=1)).squeeze(1)


@dataclass
class PeerSetup:
    """What every peer trains on: the fold's training images and the preset's transforms."""

    index: ImageIndex  # training identities only (with their forgeries, if any)
    preset: str
    image_size: tuple[int, int]
    channels: int
    batch_size: int
    seed: int
    device: str = "cpu"
    forgery_fraction: float = 0.5

    def transform(self, train: bool):
        return get_transform(self.preset, train=train, image_size=self.image_size, channels=self.channels)


@dataclass
class PeerResult:
    """A trained peer, ready to score pairs, and how much training it got."""

    name: str
    scorer: object
    train_time_s: float
    steps: int
    images: int
    epochs: float

    def stats(self) -> dict[str, float]:
        return {
            "train_time_s": self.train_time_s,
            "steps": self.steps,
            "images": self.images,
            "epochs": self.epochs,
        }


class _Budget:
    """Wall-clock budget checked after each batch."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def spent(self) -> bool:
        return self.elapsed >= self.seconds


def _epochs(loader: DataLoader) -> Iterator[tuple[int, object]]:
    """(epoch, batch) forever, calling `set_epoch` on the dataset when it has one."""
    epoch = 0
    while True:
        if hasattr(loader.dataset, "set_epoch"):
            loader.dataset.set_epoch(epoch)
        for batch in loader:
            yield epoch, batch
        epoch += 1


# ------------------------------------------------------------------------------------ (a) pairbce


@dataclass
class PairClassifierScorer:
    """Scores pairs with the classifier head (its logit) over per-image encoder features.

    In eval mode the encoder is a pure per-image function, so embedding each image once and running
    only the head per pair gives the same scores as two encoder passes per pair.
    """

    model: PairClassifier
    transform: object
    channels: int
    device: str = "cpu"

    def features(self, paths: Sequence[str]) -> np.ndarray:
        return embed_paths(self.model.encoder, paths, self.transform, self.channels, self.device)

    def score(self, feats: np.ndarray, pairs: Pairs) -> np.ndarray:
        self.model.eval()
        f = torch.from_numpy(feats).to(self.device)
        out = []
        for s in range(0, len(pairs), SCORE_BATCH):
            i = torch.from_numpy(pairs.i[s : s + SCORE_BATCH]).to(self.device)
            j = torch.from_numpy(pairs.j[s : s + SCORE_BATCH]).to(self.device)
            out.append(self.model.head_logits(f[i], f[j]).double().cpu())
        return torch.cat(out).numpy()

    @property
    def reference_distance(self) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The head as a pair metric for the reference fusion rules: minus the logit of every
        (query, reference) feature pair, `(Q, R)`."""

        def metric(queries: np.ndarray, refs: np.ndarray) -> np.ndarray:
            i, j = np.divmod(np.arange(len(queries) * len(refs)), len(refs))
            feats = np.concatenate([queries, refs]).astype(np.float32)
            pairs = Pairs(i, j + len(queries), np.zeros(len(i), bool))
            return -self.score(feats, pairs).reshape(len(queries), len(refs))

        return metric


def pair_step(model: PairClassifier, optimizer: torch.optim.Optimizer, batch, device: str) -> int:
    """One BCE step on a `pair_collate` batch; returns the number of images seen."""
    images, _, (a1, _, _, _) = batch
    b = images.shape[0] // 2
    x1, x2 = images[:b].to(device), images[b:].to(device)  # (B, C, H, W) each
    target = torch.zeros(b, device=device)
    target[a1] = 1.0  # genuine items are the a1 positions
    prob = model(x1, x2)  # (B,)
    loss = F.binary_cross_entropy(prob, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return images.shape[0]


def pair_loader(setup: PeerSetup) -> DataLoader:
    """Random 50/50 genuine/impostor pairs; one epoch = as many pairs as training images."""
    n = max(len(setup.index.genuine()), setup.batch_size)
    ds = PairDataset(
        setup.index,
        ImageLoader(setup.channels, cache=True),
        setup.transform(train=True),
        num_pairs=n,
        forgery_fraction=setup.forgery_fraction,
        seed=setup.seed,
    )
    gen = torch.Generator().manual_seed(setup.seed)
    return DataLoader(
        ds, batch_size=setup.batch_size, shuffle=True, drop_last=True, collate_fn=pair_collate, generator=gen
    )


def train_pairbce(setup: PeerSetup, budget_s: float) -> PeerResult:
    """Train recipe (a) for `budget_s` seconds."""
    torch.manual_seed(setup.seed)
    model = PairClassifier(setup.channels).to(setup.device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    loader = pair_loader(setup)
    budget, steps, images, epoch = _Budget(budget_s), 0, 0, 0
    model.train()
    for e, batch in _epochs(loader):
        if e != epoch:
            scheduler.step()
            epoch = e
        images += pair_step(model, optimizer, batch, setup.device)
        steps += 1
        if budget.spent():
            break
    logger.info("pairbce: %d steps, %d images, %.1f epochs in %.0f s", steps, images, e + 1, budget.elapsed)
    scorer = PairClassifierScorer(model, setup.transform(train=False), setup.channels, setup.device)
    return PeerResult("pairbce", scorer, budget.elapsed, steps, images, steps / max(len(loader), 1))


# ---------------------------------------------------------------------------------------- (b) pml


class _LabelledImages(Dataset):
    """Training images with explicit class labels."""

    def __init__(self, paths: Sequence[str], labels: np.ndarray, loader: ImageLoader, transform) -> None:
        self.paths, self.labels, self.loader, self.transform = list(paths), labels, loader, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.loader(self.paths[i])), int(self.labels[i])


def class_labels(index: ImageIndex) -> np.ndarray:
    """Identity position for genuine images; forgeries of identity k form one extra class each."""
    position = {name: i for i, name in enumerate(index.identities)}
    n = len(index.identities)
    return np.array([position[r.identity] + (n if r.forgery else 0) for r in index.records], np.int64)


def pml_loader(setup: PeerSetup) -> DataLoader:
    """`MPerClassSampler(labels, m=4)` batches over every training image (forgeries included)."""
    labels = class_labels(setup.index)
    ds = _LabelledImages(
        [r.path for r in setup.index.records],
        labels,
        ImageLoader(setup.channels, cache=True),
        setup.transform(train=True),
    )
    batch = min(setup.batch_size, 4 * len(np.unique(labels)))  # the sampler needs batch/4 classes
    length = max(len(labels) // batch, 1) * batch
    sampler = samplers.MPerClassSampler(labels, m=4, batch_size=batch, length_before_new_iter=length)
    return DataLoader(ds, batch_size=batch, sampler=sampler, drop_last=True)


def pml_step(model: nn.Module, loss_fn, miner, optimizer, batch, device: str) -> int:
    """One contrastive step on mined pairs; returns the number of images seen."""
    images, labels = batch[0].to(device), batch[1].to(device)
    emb = model(images)  # (B, 128)
    loss = loss_fn(emb, labels, miner(emb, labels))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return images.shape[0]


def train_pml(setup: PeerSetup, budget_s: float) -> PeerResult:
    """Train recipe (b) for `budget_s` seconds."""
    torch.manual_seed(setup.seed)
    np.random.seed(setup.seed)  # MPerClassSampler draws from numpy's global RNG
    model = resnet18_net(128, setup.channels).to(setup.device)
    loss_fn, miner = losses.ContrastiveLoss(), miners.MultiSimilarityMiner()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = pml_loader(setup)
    budget, steps, images = _Budget(budget_s), 0, 0
    model.train()
    for _, batch in _epochs(loader):
        images += pml_step(model, loss_fn, miner, optimizer, batch, setup.device)
        steps += 1
        if budget.spent():
            break
    logger.info("pml: %d steps, %d images in %.0f s", steps, images, budget.elapsed)
    scorer = EmbeddingScorer(
        model, setup.transform(train=False), setup.channels, "euclidean", normalize=True, device=setup.device
    )
    return PeerResult("pml", scorer, budget.elapsed, steps, images, steps / max(len(loader), 1))


TRAINERS = {"pairbce": train_pairbce, "pml": train_pml}


def train_peer(name: str, setup: PeerSetup, budget_s: float) -> PeerResult:
    """Train the peer recipe `name` ("pairbce" or "pml") for `budget_s` seconds."""
    logger.info("training peer %s for %.0f s", name, budget_s)
    return TRAINERS[name](setup, budget_s)


def run_peers(
    names: Sequence[str], setup: PeerSetup, budget_s: float, evaluate: Callable[[object], dict]
) -> dict[str, dict]:
    """Train and evaluate each named peer; `evaluate(scorer)` returns the fold's metrics."""
    out = {}
    for name in names:
        result = train_peer(name, setup, budget_s)
        out[name] = {**evaluate(result.scorer), **result.stats()}
    return out


@dataclass
class Fold:
    """One fold of a verification protocol: its split, validation and test pairs, training data."""

    k: int
    split: Split
    val: PairSet
    test: PairSet
    index: ImageIndex  # the whole dataset (training identities are taken from `split`)
    data: dict[str, str]  # `root=` (and `forgeries=`) for `build_train_config`
    run_dir: Path  # where our recipe's run directory goes


def ours_overrides(args: Any, smoke: dict[str, Any] = SMOKE) -> dict[str, Any]:
    """Our recipe's training options on a fold: `smoke["options"]` with `--smoke`, the seed, `--set`."""
    overrides = {**(smoke["options"] if args.smoke else {}), "seed": args.seed}
    return {**overrides, **parse_overrides(args.overrides)}


def ours_record(ours: OursResult, evaluate: Callable[[Scorer], dict[str, Any]]) -> dict[str, Any]:
    """A trained run's fold result: `evaluate(scorer)`, training time, best epoch, its own threshold."""
    record = {**evaluate(ours.scorer), "train_time_s": ours.train_time_s}
    checkpoint = ours.checkpoint
    return {**record, "best_epoch": checkpoint["epoch"], "checkpoint_threshold": checkpoint["threshold"]}


def train_recipe(
    args: Any, preset: str, fold: Fold, name: str, budget_s: float, smoke: dict[str, Any] = SMOKE
) -> OursResult:
    """Train the library-built peer `name` (a key of `RECIPES`) on the fold for `budget_s` seconds
    (`minutes`; the smoke options instead with `--smoke`), in its own run directory."""
    logger.info("training peer %s for %.0f s", name, budget_s)
    time = {} if args.smoke else {"minutes": budget_s / 60}
    options = {**RECIPE_OPTIONS[name], **(smoke["options"] if args.smoke else {}), **time, "seed": args.seed}
    run_dir = fold.run_dir.with_name(f"{fold.run_dir.name}-{name}")
    return train_ours(preset, fold.split, run_dir, options, args.device, **fold.data)


def compare_on_fold(
    args: Any,
    preset: str,
    fold: Fold,
    test_pairs: dict[str, Any],
    baselines: dict[str, Scorer] | None = None,
    smoke: dict[str, Any] = SMOKE,
) -> dict[str, Any]:
    """Train our recipe, then each peer with the same budget, and evaluate all on the fold's pairs.

    Args:
        args: the script's parsed options (seed, overrides, work_dir, device, budget, peers, smoke).
        preset: our recipe's preset.
        fold: the fold.
        test_pairs: the test pair counts, as the fold's record reports them.
        baselines: untrained scorers evaluated after the peers, by method name.
        smoke: `options` (training overrides), `budget` (s) and `peer_batch` used with `--smoke`.

    Returns:
        The fold's record: `fold` (1-based), `split`, `test_pairs`, `val_pairs` (counts), `budget_s`,
        our resolved `config`, and `methods`: per method its threshold, validation EER, metrics per
        test pair set, and training time.
    """
    split = fold.split
    sizes = f"{len(split.train)}/{len(split.val)}/{len(split.test)}"
    logger.info("fold %d: %s train/val/test identities, test pairs %s", fold.k + 1, sizes, test_pairs)
    ours = train_ours(preset, fold.split, fold.run_dir, ours_overrides(args, smoke), args.device, **fold.data)
    counts, seed = reference_counts(args), args.seed + fold.k
    evaluate = partial(evaluate_method, val=fold.val, test=fold.test, references=counts, seed=seed)
    methods = {"ours": ours_record(ours, evaluate)}
    budget = args.budget or (smoke["budget"] if args.smoke else ours.train_time_s)
    size, channels = input_shape(ours.config)
    setup = PeerSetup(
        index=fold.index.subset(fold.split.train),
        preset=preset,
        image_size=size,
        channels=channels,
        batch_size=smoke["peer_batch"] if args.smoke else ours.config.optim.batch_size,
        seed=args.seed + fold.k,
        device=args.device,
        forgery_fraction=ours.config.data.forgery_fraction,
    )
    names = peer_names(args.peers, (*PEERS, *RECIPES))
    methods.update(run_peers([n for n in names if n in PEERS], setup, budget, evaluate))
    for name in (n for n in names if n in RECIPES):
        methods[name] = ours_record(train_recipe(args, preset, fold, name, budget, smoke), evaluate)
    methods.update({name: {**evaluate(s), "train_time_s": 0.0} for name, s in (baselines or {}).items()})
    # The enrolled references depend only on the fold's seed and images: the same for every method.
    enrolled = [m["references"].pop("references") for m in methods.values() if "references" in m]
    return {
        "fold": fold.k + 1,
        "split": split.to_dict(),
        "test_pairs": test_pairs,
        "val_pairs": fold.val.sets["val"].counts,
        "budget_s": budget,
        "config": ours.config.to_dict(),
        **({"enrolled_references": enrolled[0]} if enrolled else {}),
        "methods": methods,
    }
