"""1:N identification against a naive per-query loop, the open-set decision, add/remove round trips."""

from __future__ import annotations

import numpy as np
import pytest

from siamese.errors import ConfigError, DataError
from siamese.evaluation.identification import fpir_at
from siamese.galleries import CalibrationSet, Gallery, Identifier
from siamese.galleries.enroll import calibrate_gallery

FUSIONS = ("mean", "min", "template", "adaptive", "svm")


def _gallery(distance: str = "euclidean", seed: int = 0) -> Gallery:
    """8 identities x 1-4 references around their centres, 'h' a copy of 'g' (exact ties), a
    calibration set of 6 other identities x 3 images."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(14, 6)) * 3
    names = [chr(ord("a") + i) for i in range(7)]
    refs = [(centres[i] + rng.normal(size=(1 + i % 4, 6)) * 0.5).astype(np.float32) for i in range(7)]
    names.append("h")
    refs.append(refs[6].copy())  # "h" ties "g" everywhere
    cal = np.concatenate([centres[8 + j] + rng.normal(size=(3, 6)) * 0.5 for j in range(6)]).astype(
        np.float32
    )
    labels = np.repeat([f"c{j}" for j in range(6)], 3)
    g = Gallery(
        model="m",
        fingerprint="sha256:" + "0" * 64,
        distance=distance,
        identities=tuple(names),
        files=tuple(tuple(f"{n}{r}.png" for r in range(len(x))) for n, x in zip(names, refs, strict=True)),
        references=tuple(refs),
        fusions=FUSIONS,
        thresholds={},
        info={"calibration": {"rule": "eer", "seed": 0}},
        calibration=CalibrationSet(cal, labels),
    )
    return calibrate_gallery(g)


def _naive(g: Gallery, query: np.ndarray, fusion: str, k: int) -> list[tuple[str, float]]:
    scored = [(float(g.distances(query[None, :], name, fusion)[0]), name) for name in g.identities]
    return [(name, d) for d, name in sorted(scored)[:k]]


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_ranking_equals_a_naive_loop_with_ties(distance: str, fusion: str) -> None:
    g = _gallery(distance)
    rng = np.random.default_rng(3)
    queries = np.concatenate([rng.normal(size=(6, 6)) * 3, g.references[6][:1]])  # the last ties g/h
    ranked = Identifier(g, fusion).rank(queries, k=5)
    for q, got in zip(queries, ranked, strict=True):
        want = _naive(g, q, fusion, 5)
        assert [c.identity for c in got] == [n for n, _ in want]
        assert [c.distance for c in got] == pytest.approx([d for _, d in want], abs=1e-9)
    names = [c.identity for c in ranked[-1]]
    if fusion != "svm":  # identical references: equal distances, "g" before "h"
        assert names.index("g") + 1 == names.index("h")


def test_open_set_decision_at_the_calibrated_fpir() -> None:
    g = _gallery()
    ident = Identifier(g, "min")
    nonmated = g.nonmated_distances("min")
    assert len(nonmated) == 18  # every calibration image searched once
    assert nonmated == pytest.approx(
        [
            min(float(g.distances(q[None], n, "min")[0]) for n in g.identities)
            for q in g.calibration.embeddings
        ]
    )
    for rate in (0.1, 0.3):
        assert fpir_at(nonmated, ident.threshold(rate)) <= rate
    mated = g.references[2][:1] + 0.01
    stranger = np.full((1, 6), 50.0, np.float32)
    found = ident.identify(np.concatenate([mated, stranger]), ["mate", "stranger"], k=3, fpir=0.3)
    assert found[0].identity == "c" and found[0].candidates[0].identity == "c"
    assert found[1].identity is None and len(found[1].candidates) == 3  # ranked all the same
    assert found[0].to_dict()["identity"] == "c" and found[1].to_dict()["identity"] is None
    with pytest.raises(ConfigError, match="--fpir"):
        ident.threshold(1.5)
    with pytest.raises(ConfigError, match="-k"):
        ident.rank(mated, 0)


def test_adding_and_removing_identities() -> None:
    g = _gallery()
    ids_before = np.concatenate(g.reference_ids)
    new = np.random.default_rng(5).normal(size=(2, 6)).astype(np.float32) + 20
    grown = calibrate_gallery(
        g.with_references(["zed", "a"], [["z1.png", "z2.png"], ["a9.png"]], [new, new[:1]])
    )
    assert grown.identities[-1] == "zed" and grown.files[0][-1] == "a9.png" and len(grown.references[0]) == 2
    assert np.isin(ids_before, np.concatenate(grown.reference_ids)).all()  # old ids kept
    assert len(np.unique(np.concatenate(grown.reference_ids))) == sum(len(r) for r in grown.references)
    assert Identifier(grown, "min").rank(new[:1], 1)[0][0].identity in ("zed", "a")
    assert grown.scorers is not None and len(grown.scorers) == grown.size  # svm refitted
    shrunk = calibrate_gallery(grown.without(["zed", "c"]))
    assert "zed" not in shrunk.identities and "c" not in shrunk.identities
    for fusion in FUSIONS:
        ranked = Identifier(shrunk, fusion).rank(np.concatenate([new, shrunk.references[0]]), k=shrunk.size)
        assert all(c.identity not in ("zed", "c") for row in ranked for c in row)
        assert len(shrunk.nonmated[fusion]) == 18
    with pytest.raises(DataError, match="not enrolled"):
        g.without(["nobody"])
    with pytest.raises(DataError, match="every identity"):
        g.without(list(g.identities))


def test_round_trip_keeps_the_open_set_calibration(tmp_path) -> None:
    g = _gallery("cosine")
    g.save(tmp_path / "g")
    back = Gallery.load(tmp_path / "g")
    assert back.calibration is not None
    assert np.array_equal(back.calibration.embeddings, g.calibration.embeddings)
    assert back.calibration.labels.tolist() == g.calibration.labels.tolist()
    for f in FUSIONS:
        assert np.array_equal(back.nonmated[f], g.nonmated[f])
        assert Identifier(back, f).threshold(0.2) == Identifier(g, f).threshold(0.2)
    assert [np.asarray(i).tolist() for i in back.reference_ids] == [
        np.asarray(i).tolist() for i in g.reference_ids
    ]


def test_a_killed_save_leaves_the_old_gallery(tmp_path, monkeypatch) -> None:
    g = _gallery()
    g.save(tmp_path / "g")
    grown = calibrate_gallery(g.with_references(["zed"], [["z.png"]], [np.ones((1, 6), np.float32)]))

    import siamese.galleries.gallery as module

    real = module.atomic_write

    def killed(path, write):
        if path.name == module.GALLERY_FILE:
            raise KeyboardInterrupt  # killed after the new arrays were written, before the commit
        real(path, write)

    monkeypatch.setattr(module, "atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        grown.save(tmp_path / "g")
    monkeypatch.setattr(module, "atomic_write", real)
    back = Gallery.load(tmp_path / "g")
    assert back.identities == g.identities and "zed" not in back.identities
    grown.save(tmp_path / "g")  # the next write cleans the orphan arrays file up
    assert len(list((tmp_path / "g").glob("gallery*.safetensors"))) == 1
    assert Gallery.load(tmp_path / "g").identities[-1] == "zed"


def test_shortlisting_through_an_index_equals_exact_search() -> None:
    pytest.importorskip("faiss")
    from siamese.galleries import get_index

    g = _gallery("cosine")
    index = get_index("faiss-flat", g.distance, g.embedding_dim)
    index.add(np.concatenate(g.reference_ids), np.concatenate(g.references))
    queries = np.random.default_rng(9).normal(size=(20, 6))
    exact = Identifier(g, "min").rank(queries, 3)
    short = Identifier(g, "min", index).rank(queries, 3)  # nearest references hold the nearest identities
    for a, b in zip(exact, short, strict=True):
        assert [c.identity for c in a] == [c.identity for c in b]
        assert [c.distance for c in a] == pytest.approx([c.distance for c in b], abs=1e-9)


def test_an_svm_only_gallery_of_one_identity_says_why_it_cannot_identify() -> None:
    g = _gallery()
    lonely = calibrate_gallery(
        Gallery(
            g.model,
            g.fingerprint,
            g.distance,
            g.identities[:1],
            g.files[:1],
            g.references[:1],
            ("svm",),
            {},
            info=g.info,
            calibration=g.calibration,
        )
    )
    assert lonely.scorers is None and lonely.usable_fusions == ()
    with pytest.raises(ConfigError, match="two enrolled identities"):
        Identifier(lonely)
