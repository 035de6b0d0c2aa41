"""1:N identification: "who is this, if anyone?" against a gallery.

Every enrolled identity gets the gallery's fused distance to the query (`siamese.evaluation.fusion`:
the same number `siamese verify --claim` gives for that identity), the identities are ranked by it
(ties by name), and the open-set decision names the best one only if its distance passes the
identification threshold: the threshold at which a share FPIR of the calibration identities' images
(people who are not enrolled, searched against this very gallery) would have been given a candidate.

Search runs in two steps so that any backend serves any fusion rule: candidates are shortlisted -
by the exact fused distance to every identity (float32, one matrix product; the default) or by the
nearest references a `SearchIndex` returns (faiss, Milvus) - then the shortlist is scored exactly
(float64) with the gallery's fusion rule.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from siamese.errors import ConfigError
from siamese.evaluation.fusion import SPREAD_WEIGHT, fused_matrix, reference_spread, reference_template
from siamese.evaluation.identification import fpir_threshold
from siamese.galleries.backends import ExactIndex, SearchIndex, top_k
from siamese.galleries.gallery import Gallery

_SHORTLIST_MARGIN = 8  # extra identities scored exactly beyond k, against float32 rounding at the cut


@dataclass(frozen=True)
class Candidate:
    """One enrolled identity and its fused distance to the query (lower = more alike)."""

    identity: str
    distance: float


@dataclass
class Identification:
    """The answer to one query.

    Attributes:
        query: the query's name (its file, or its position).
        identity: the decision: the best candidate if its distance passes the threshold, else None
            ("unknown").
        candidates: the k nearest identities, nearest first (ties by name).
        threshold: the identification threshold (a distance) at `fpir`.
        fpir: the false-positive identification rate the threshold was set for.
        fusion: the fusion rule scoring each identity.
        gallery_size: N, the number of enrolled identities.
        seconds: wall time of this query's search (and its share of embedding, when images were given).
    """

    query: str
    identity: str | None
    candidates: list[Candidate]
    threshold: float
    fpir: float
    fusion: str
    gallery_size: int
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; `identity` is null for "unknown"."""
        out = asdict(self)
        out.update(out.pop("extra"))
        return out


class FusedSearch:
    """Exact fused distances from queries to every identity, vectorised (float32): the default shortlist.

    Args:
        gallery: the enrolled identities.
        fusion: a rule the gallery was built for.
    """

    def __init__(self, gallery: Gallery, fusion: str) -> None:
        self.fusion = gallery.check_fusion(fusion)
        dim, distance = gallery.embedding_dim, gallery.distance
        self._offset: np.ndarray | None = None
        self._starts = self._counts = np.zeros(0, np.int64)
        self._index: ExactIndex | None = None
        if fusion == "svm":
            assert gallery.scorers is not None
            self._w = np.stack([s.weights for s in gallery.scorers]).astype(np.float32)  # (K, D)
            self._b = np.array([s.bias for s in gallery.scorers], np.float32)  # (K,)
            return
        self._index = ExactIndex(distance, dim)
        if fusion in ("mean", "min"):
            counts = np.array([len(r) for r in gallery.references])
            self._starts, self._counts = np.concatenate([[0], np.cumsum(counts)[:-1]]), counts
            self._index.add(np.concatenate(gallery.reference_ids), np.concatenate(gallery.references))
        else:
            templates = np.stack([reference_template(r, distance) for r in gallery.references])  # (K, D)
            self._index.add(np.arange(len(templates)), templates)
            if fusion == "adaptive":
                spreads = np.array([reference_spread(r, distance) for r in gallery.references])
                self._offset = (SPREAD_WEIGHT * spreads).astype(np.float32)

    def distances(self, queries: np.ndarray) -> np.ndarray:
        """`(Q, K)` fused distances, column k for the gallery's identity k."""
        q = np.asarray(queries, dtype=np.float32)
        if self._index is None:
            return -(q @ self._w.T + self._b)
        d = self._index.distances(q)  # (Q, M) or (Q, K)
        if self.fusion == "min":
            return np.minimum.reduceat(d, self._starts, axis=1)
        if self.fusion == "mean":
            return np.add.reduceat(d, self._starts, axis=1) / self._counts
        return d if self._offset is None else d - self._offset


class Identifier:
    """Ranks a gallery's identities for query embeddings and makes the open-set decision.

    Args:
        gallery: the enrolled identities (with their open-set calibration, for decisions).
        fusion: a rule the gallery was built for; default the gallery's identification rule
            (chosen at enrolment), else the rule with the lowest calibration EER.
        index: a `SearchIndex` over the gallery's references that shortlists candidates (their
            nearest references); None searches every identity exactly.
        threads: BLAS/OpenMP threads of a search (default 1: a single query is faster on one
            thread than on oversubscribed ones); None leaves the libraries' own setting.
    """

    def __init__(
        self,
        gallery: Gallery,
        fusion: str | None = None,
        index: SearchIndex | None = None,
        threads: int | None = 1,
    ) -> None:
        self.gallery = gallery
        self.threads = threads
        self._controller: Any = None
        typical = int(np.median([len(r) for r in gallery.references]))
        default = gallery.info.get("identification", {}).get("fusion") or gallery.default_fusion(typical)
        self.fusion = gallery.check_fusion(fusion or default)
        self.index = None if index is not None and index.exact and index.name == "exact" else index
        self._exact = FusedSearch(gallery, self.fusion) if self.index is None else None
        self._owner = (
            {int(i): k for k, ids in enumerate(gallery.reference_ids) for i in np.asarray(ids).tolist()}
            if self.index is not None
            else {}
        )
        self._max_refs = max(len(r) for r in gallery.references)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """BLAS and OpenMP (faiss) held to `threads` inside the block (a controller made once: a
        fresh `threadpool_limits` costs about half a millisecond, as much as a search)."""
        if self.threads is None:
            yield
            return
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        with self._controller.limit(limits=self.threads):
            yield

    def threshold(self, fpir: float | None = None) -> float:
        """The identification threshold (a distance) at `fpir` (default: the gallery's)."""
        return fpir_threshold(self.gallery.nonmated_distances(self.fusion), self.gallery.fpir(fpir))

    def rank(self, queries: np.ndarray, k: int = 5) -> list[list[Candidate]]:
        """The k nearest identities of each `(Q, D)` query embedding, nearest first (ties by name)."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"-k must be an integer >= 1, got {k!r}")
        q = np.asarray(queries, dtype=np.float64).reshape(-1, self.gallery.embedding_dim)
        k = min(k, self.gallery.size)
        short = min(self.gallery.size, max(2 * k, k + _SHORTLIST_MARGIN))
        with self._threads():
            shortlists = self._shortlist(q, short)
            return [self._score(q[i : i + 1], cand, k) for i, cand in enumerate(shortlists)]

    def _shortlist(self, q: np.ndarray, short: int) -> list[np.ndarray]:
        if self._exact is not None:
            return list(top_k(self._exact.distances(q), short))
        assert self.index is not None
        _, ids = self.index.search(q.astype(np.float32), short * self._max_refs)  # (Q, short * R)
        out = []
        for row in ids:
            owners = [self._owner[i] for i in row.tolist() if i >= 0]
            out.append(np.array(list(dict.fromkeys(owners)), dtype=np.int64))  # first seen = nearest
        return out

    def _score(self, query: np.ndarray, candidates: np.ndarray, k: int) -> list[Candidate]:
        g = self.gallery
        if not len(candidates):
            return []
        scorers = None if g.scorers is None or self.fusion != "svm" else [g.scorers[c] for c in candidates]
        refs = [g.references[c] for c in candidates]
        dist = fused_matrix(query, refs, self.fusion, g.distance, scorers)[0]  # (C,) float64
        order = sorted(range(len(candidates)), key=lambda j: (dist[j], g.identities[candidates[j]]))
        return [Candidate(g.identities[candidates[j]], float(dist[j])) for j in order[:k]]

    def identify(
        self,
        queries: np.ndarray,
        names: Sequence[str] | None = None,
        k: int = 5,
        fpir: float | None = None,
    ) -> list[Identification]:
        """Rank and decide for each `(Q, D)` query embedding.

        Args:
            queries: the query embeddings.
            names: a name per query (default its position).
            k: candidates returned per query.
            fpir: the operating point (default the gallery's).

        Raises:
            DataError: the gallery has no open-set calibration.
        """
        start = time.perf_counter()
        self.threshold(self.gallery.fpir(fpir))  # an uncalibrated gallery fails before searching
        ranked = self.rank(queries, k)
        each = (time.perf_counter() - start) / max(len(ranked), 1)
        names = [f"#{i + 1}" for i in range(len(ranked))] if names is None else list(names)
        return [self.decide(cands, name, fpir, each) for name, cands in zip(names, ranked, strict=True)]

    def decide(
        self, candidates: list[Candidate], name: str, fpir: float | None = None, seconds: float = 0.0
    ) -> Identification:
        """The open-set decision on one query's ranked candidates (`rank`) at `fpir`.

        Raises:
            DataError: the gallery has no open-set calibration.
        """
        rate = self.gallery.fpir(fpir)
        threshold = self.threshold(rate)
        return Identification(
            query=name,
            identity=candidates[0].identity if candidates and candidates[0].distance <= threshold else None,
            candidates=candidates,
            threshold=threshold,
            fpir=rate,
            fusion=self.fusion,
            gallery_size=self.gallery.size,
            seconds=seconds,
        )

    def best_distances(self, queries: np.ndarray) -> np.ndarray:
        """`(Q,)` the fused distance of each query's nearest identity (its non-mated score when the
        query's identity is not enrolled)."""
        return np.array([cands[0].distance for cands in self.rank(queries, 1)], dtype=np.float64)
