"""`siamese identify`, `siamese gallery show|remove|index`, `enroll --add` and `evaluate --protocol identify`
through the CLI (Typer's CliRunner) on a trained tiny run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from siamese.cli.app import app
from siamese.data import Split
from siamese.galleries import Gallery, Identifier
from siamese.galleries.gallery import GALLERY_FILE
from siamese.inference import EmbeddingModel
from tests.cli.test_enroll import _ok, _one_line_error, lfw_people
from tests.conftest import face_on_canvas, lfw_photo

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def people(tiny_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, list[str]]:
    """(run, first enrolment folder = one test identity, second = the other, their names)."""
    run, data = tiny_run
    base = tmp_path_factory.mktemp("identify")
    names = sorted(Split.from_json(run / "split.json").test)
    for i, name in enumerate(names):
        shutil.copytree(data / name, base / f"part{i}" / name)
    return run, base / "part0", base / "part1", names


def _enrol(run: Path, data: Path, out: Path, *extra: str) -> None:
    _ok(runner.invoke(app, ["enroll", str(data), "--model", str(run), "--out", str(out), *extra]))


def test_identify_ranks_and_decides_like_the_library(people, tmp_path: Path) -> None:
    run, first, second, names = people
    _enrol(run, first, tmp_path / "g")
    _enrol(run, second, tmp_path / "g", "--add")  # no --model: the gallery's own
    g = Gallery.load(tmp_path / "g")
    assert g.identities == tuple(names) and g.calibration is not None
    queries = sorted((second / names[1]).glob("*.png"))[:2]
    result = _ok(
        runner.invoke(app, ["identify", *map(str, queries), "--gallery", str(tmp_path / "g"), "--json"])
    )
    out = json.loads(result.stdout)["results"]
    model = EmbeddingModel.from_checkpoint(run)
    want = Identifier(g).identify(model.embed([str(q) for q in queries]), [str(q) for q in queries], k=5)
    assert [r["query"] for r in out] == [str(q) for q in queries]
    for got, ref in zip(out, want, strict=True):
        assert [c["identity"] for c in got["candidates"]] == [c.identity for c in ref.candidates]
        assert [c["distance"] for c in got["candidates"]] == pytest.approx(
            [c.distance for c in ref.candidates]
        )
        assert got["identity"] == ref.identity and got["threshold"] == pytest.approx(ref.threshold)
        assert got["gallery_size"] == 2 and got["fpir"] == 0.01
    # the candidate's distance is the one `verify --claim` gives that identity
    claim = _ok(
        runner.invoke(
            app, ["verify", str(queries[0]), "--gallery", str(tmp_path / "g"), "--claim", names[1], "--json"]
        )
    )
    fusion = out[0]["fusion"]
    claim_json = json.loads(claim.stdout)
    if claim_json["fusion"] == fusion:
        own = next(c for c in out[0]["candidates"] if c["identity"] == names[1])
        assert own["distance"] == pytest.approx(claim_json["distance"])


def test_identify_human_output_folder_queries_and_options(people, tmp_path: Path) -> None:
    run, first, _, names = people
    _enrol(run, first, tmp_path / "g", "--fpir", "0.2")
    result = _ok(runner.invoke(app, ["identify", str(first), "--gallery", str(tmp_path / "g"), "-k", "1"]))
    assert result.stdout.count("->") == 5 and "FPIR 0.2" in result.stdout and "N = 1" in result.stdout
    loose = _ok(
        runner.invoke(
            app, ["identify", str(first), "--gallery", str(tmp_path / "g"), "--fpir", "0.9", "--json"]
        )
    )
    strict = _ok(
        runner.invoke(
            app, ["identify", str(first), "--gallery", str(tmp_path / "g"), "--fpir", "0.001", "--json"]
        )
    )
    t_loose = json.loads(loose.stdout)["results"][0]["threshold"]
    t_strict = json.loads(strict.stdout)["results"][0]["threshold"]
    assert t_strict < t_loose
    assert all(r["identity"] == names[0] for r in json.loads(loose.stdout)["results"])  # its own images
    minned = _ok(
        runner.invoke(
            app, ["identify", str(first), "--gallery", str(tmp_path / "g"), "--fusion", "min", "--json"]
        )
    )
    assert {r["fusion"] for r in json.loads(minned.stdout)["results"]} == {"min"}


def test_identify_errors_are_one_line(people, tmp_path: Path) -> None:
    run, first, _, names = people
    query = str(next(first.glob("*/*.png")))
    assert "--gallery" in _one_line_error(runner.invoke(app, ["identify", query]))
    assert "siamese enroll" in _one_line_error(
        runner.invoke(app, ["identify", query, "--gallery", str(tmp_path)])
    )
    _enrol(run, first, tmp_path / "g", "--fusion", "mean")
    assert "built for mean" in _one_line_error(
        runner.invoke(app, ["identify", query, "--gallery", str(tmp_path / "g"), "--fusion", "svm"])
    )
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert "bad.png" in _one_line_error(
        runner.invoke(app, ["identify", str(tmp_path / "bad.png"), "--gallery", str(tmp_path / "g")])
    )
    meta = json.loads((tmp_path / "g" / GALLERY_FILE).read_text())
    meta["model"]["fingerprint"] = "sha256:" + "1" * 64  # a gallery of another model
    (tmp_path / "g" / GALLERY_FILE).write_text(json.dumps(meta))
    assert "enrol again" in _one_line_error(
        runner.invoke(app, ["identify", query, "--gallery", str(tmp_path / "g")])
    )
    assert "enrol again" in _one_line_error(
        runner.invoke(app, ["enroll", str(first), "--model", str(run), "--out", str(tmp_path / "g"), "--add"])
    )


def test_gallery_remove_show_and_index(people, tmp_path: Path) -> None:
    run, first, second, names = people
    _enrol(run, first, tmp_path / "g")
    _enrol(run, second, tmp_path / "g", "--add")
    shown = json.loads(_ok(runner.invoke(app, ["gallery", "show", str(tmp_path / "g"), "--json"])).stdout)
    assert shown["identities"] == 2 and shown["index"] == {"backend": "exact"}
    removed = _ok(runner.invoke(app, ["gallery", "remove", str(tmp_path / "g"), names[0]]))
    assert "removed 1" in removed.stdout
    query = str(next((first / names[0]).glob("*.png")))
    out = json.loads(
        _ok(runner.invoke(app, ["identify", query, "--gallery", str(tmp_path / "g"), "--json"])).stdout
    )
    assert [c["identity"] for c in out["results"][0]["candidates"]] == [names[1]]  # never returned again
    assert "not enrolled" in _one_line_error(
        runner.invoke(app, ["gallery", "remove", str(tmp_path / "g"), "ghost"])
    )
    assert "every identity" in _one_line_error(
        runner.invoke(app, ["gallery", "remove", str(tmp_path / "g"), names[1]])
    )
    assert "KEY=VALUE" in _one_line_error(
        runner.invoke(app, ["gallery", "index", str(tmp_path / "g"), "exact", "--index-option", "nlist"])
    )
    assert "unknown search backend" in _one_line_error(
        runner.invoke(app, ["gallery", "index", str(tmp_path / "g"), "annoy"])
    )


def test_an_approximate_index_is_guarded_and_follows_changes(people, tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    run, first, second, names = people
    _enrol(run, first, tmp_path / "g", "--index", "faiss-hnsw")
    g = Gallery.load(tmp_path / "g")
    assert g.info["index"]["backend"] == "faiss-hnsw" and g.info["index"]["agreement"] == 1.0
    assert len(list((tmp_path / "g").glob("index-*"))) == 1
    _enrol(run, second, tmp_path / "g", "--add")  # the index is updated, not rebuilt
    g = Gallery.load(tmp_path / "g")
    assert g.info["index"]["references"] == sum(len(r) for r in g.references) == 10
    shown = _ok(runner.invoke(app, ["gallery", "show", str(tmp_path / "g")]))
    assert "faiss-hnsw" in shown.stdout and "agreement with exact 100.0%" in shown.stdout
    back = _ok(runner.invoke(app, ["gallery", "index", str(tmp_path / "g"), "exact", "--json"]))
    assert json.loads(back.stdout)["index"] == {"backend": "exact"} and not list(
        (tmp_path / "g").glob("index-*")
    )


def test_enroll_from_embeddings_equals_enrolling_the_images(people, tmp_path: Path) -> None:
    run, first, _, names = people
    _ok(runner.invoke(app, ["embed", str(first), "--model", str(run), "--out", str(tmp_path / "e.npy")]))
    args = [
        "enroll",
        "--embeddings",
        str(tmp_path / "e.npy"),
        "--model",
        str(run),
        "--out",
        str(tmp_path / "ge"),
    ]
    _ok(runner.invoke(app, args))
    _enrol(run, first, tmp_path / "gi")
    a, b = Gallery.load(tmp_path / "ge"), Gallery.load(tmp_path / "gi")
    assert a.identities == b.identities
    for x, y in zip(a.references, b.references, strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)
    assert "DATA folder or from --embeddings" in _one_line_error(
        runner.invoke(app, ["enroll", "--model", str(run), "--out", str(tmp_path / "gx")])
    )


def test_evaluate_identify_protocol(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    args = ["evaluate", str(data), "--model", str(run), "--protocol", "identify", "--split", "all"]
    result = _ok(
        runner.invoke(app, [*args, "--references", "1,3", "--fusion", "min", "--out", str(tmp_path / "ev")])
    )
    assert "open-set identification" in result.stdout and (tmp_path / "ev" / "dir_fpir.png").is_file()
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    part = report["identification"]
    assert part["identities"] == {"enrolled": 4, "calibration": 2, "fresh": 2}
    assert set(part["counts"]) == {"1", "3"} and set(part["counts"]["1"]) == {"min"}
    entry = part["counts"]["3"]["min"]
    assert entry["gallery_size"] == 4 and entry["mated_searches"] == 4 * 2
    assert set(entry["open_set"]) == {"fpir=0.003", "fpir=0.01", "fpir=0.1"}
    assert "--pairs" in _one_line_error(runner.invoke(app, [*args, "--pairs", str(tmp_path / "p.txt")]))


def test_a_gallery_in_milvus_identifies_like_the_file_backend(people, tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    run, first, second, names = people
    _enrol(run, first, tmp_path / "g", "--index", "milvus")
    _enrol(run, second, tmp_path / "g", "--add")  # vectors inserted into the collection, not rebuilt
    _enrol(run, first, tmp_path / "f")
    _enrol(run, second, tmp_path / "f", "--add")
    assert (tmp_path / "g" / "milvus.db").exists()
    queries = [str(p) for p in sorted(second.glob("*/*.png"))[:3]] + [str(next(first.glob("*/*.png")))]
    found = {}
    for name in ("g", "f"):
        result = _ok(runner.invoke(app, ["identify", *queries, "--gallery", str(tmp_path / name), "--json"]))
        found[name] = json.loads(result.stdout)["results"]
    for a, b in zip(found["g"], found["f"], strict=True):
        assert a["identity"] == b["identity"] and a["threshold"] == b["threshold"]
        assert [c["identity"] for c in a["candidates"]] == [c["identity"] for c in b["candidates"]]
        assert [c["distance"] for c in a["candidates"]] == pytest.approx(
            [c["distance"] for c in b["candidates"]]
        )
    _ok(runner.invoke(app, ["gallery", "remove", str(tmp_path / "g"), names[0]]))
    result = _ok(runner.invoke(app, ["identify", queries[-1], "--gallery", str(tmp_path / "g"), "--json"]))
    assert [c["identity"] for c in json.loads(result.stdout)["results"][0]["candidates"]] == [names[1]]


def test_identify_detect_finds_the_enrolled_face_in_a_larger_photo(tiny_run, lfw, tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    enrol, calibration = lfw_people(lfw, tmp_path)
    run = str(tiny_run[0])
    args = ["--model", run, "--calibration", str(calibration), "--out", str(tmp_path / "g"), "--detect"]
    _ok(runner.invoke(app, ["enroll", str(enrol), *args]))
    query = tmp_path / "query.png"
    face_on_canvas(lfw_photo(lfw, "Tony_Blair", 1), (200, 100)).save(query)  # an enrolled photo, moved
    ask = ["identify", str(query), "--gallery", str(tmp_path / "g"), "--json"]
    out = json.loads(_ok(runner.invoke(app, [*ask, "--detect"])).stdout)["results"][0]
    model = EmbeddingModel.from_checkpoint(run, detect=True)
    want = Identifier(Gallery.load(tmp_path / "g")).identify(model.embed([str(query)]), [str(query)], k=5)[0]
    assert [c["identity"] for c in out["candidates"]] == [c.identity for c in want.candidates]
    assert out["candidates"][0]["distance"] == pytest.approx(want.candidates[0].distance, abs=1e-6)
    whole = json.loads(_ok(runner.invoke(app, ask)).stdout)["results"][0]
    assert whole["candidates"][0]["distance"] != pytest.approx(out["candidates"][0]["distance"], abs=1e-4)
