"""The service's HTTP contract through FastAPI's TestClient: every endpoint against the CLI and the
library, enrol -> identify -> delete -> identify, persistence across a restart, auth, errors."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from siamese.cli.app import app as cli
from siamese.data import Split
from siamese.galleries import Gallery, Identifier
from siamese.galleries.gallery import GALLERY_FILE
from siamese.inference import EmbeddingModel
from tests.serve.conftest import files, images_of

runner = CliRunner(env={"COLUMNS": "200"})
DECISION = ("same", "threshold", "model")  # compared exactly; distance and confidence approximately


def _cli_json(*args: str) -> dict:
    result = runner.invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _same_decision(api: dict, want: dict) -> None:
    for key in DECISION:
        assert api[key] == want[key], key
    assert api["distance"] == pytest.approx(want["distance"], rel=1e-5, abs=1e-7)
    if want["confidence"] is None:
        assert api["confidence"] is None
    else:
        assert api["confidence"] == pytest.approx(want["confidence"], rel=1e-5, abs=1e-7)
    assert set(want) <= set(api) and {"fingerprint", "timings"} <= set(api)


@pytest.fixture
def names(tiny_run) -> list[str]:
    """The tiny run's test identities (neither trained on nor calibrated on)."""
    return sorted(Split.from_json(tiny_run[0] / "split.json").test)


def test_verify_equals_the_cli_for_multipart_and_base64(make_client, tiny_run) -> None:
    run, data = tiny_run
    a, b = images_of(data, "id00")[0], images_of(data, "id03")[1]
    want = _cli_json("verify", str(a), str(b), "--model", str(run))
    client = make_client()
    multipart = client.post("/v1/verify", files=files("image_a", [a]) + files("image_b", [b]))
    encoded = {k: base64.b64encode(p.read_bytes()).decode() for k, p in (("image_a", a), ("image_b", b))}
    as_json = client.post("/v1/verify", json=encoded)
    data_url = client.post("/v1/verify", json={k: "data:image/png;base64," + v for k, v in encoded.items()})
    for response in (multipart, as_json, data_url):
        assert response.status_code == 200, response.text
        _same_decision(response.json(), want)
    # a threshold given overrides the model's, as `verify --threshold` does
    strict = client.post("/v1/verify", json={**encoded, "threshold": -1.0}).json()
    assert strict["same"] is False and strict["threshold"] == -1.0


def test_enrol_identify_delete_identify(make_client, tiny_run, names, tmp_path: Path) -> None:
    run, data = tiny_run
    client = make_client()
    assert client.post("/v1/identify", files=files("image", images_of(data, names[0])[:1])).status_code == 409
    for name in names:
        r = client.post(
            "/v1/enroll", data={"identity": name}, files=files("images", images_of(data, name)[:3])
        )
        assert r.status_code == 200, r.text
        assert r.json()["created"] is True and r.json()["references"] == 3
    more = client.post(
        "/v1/enroll", data={"identity": names[0]}, files=files("images", images_of(data, names[0])[3:4])
    )
    assert (
        more.json()["created"] is False
        and more.json()["references"] == 4
        and more.json()["gallery_size"] == 2
    )
    assert (tmp_path / "g" / GALLERY_FILE).is_file()  # persisted before the answer

    query = images_of(data, names[1])[4]
    got = client.post("/v1/identify", files=files("image", [query]), data={"k": "2"}).json()
    gallery = Gallery.load(tmp_path / "g")
    want = Identifier(gallery).identify(EmbeddingModel.from_checkpoint(run).embed([str(query)]), k=2)[0]
    assert [c["identity"] for c in got["candidates"]] == [c.identity for c in want.candidates]
    assert [c["distance"] for c in got["candidates"]] == pytest.approx(
        [c.distance for c in want.candidates], rel=1e-5
    )
    assert got["identity"] == want.identity and got["gallery_size"] == 2 and got["query"] == query.name
    assert got["threshold"] == pytest.approx(want.threshold)

    # the CLI's claim verification against the same gallery gives the same decision
    claim = client.post("/v1/verify", files=files("image_a", [query]), data={"claim": names[0]}).json()
    cli_claim = _cli_json("verify", str(query), "--gallery", str(tmp_path / "g"), "--claim", names[0])
    _same_decision(claim, cli_claim)
    assert claim["fusion"] == cli_claim["fusion"] and claim["references"] == 4

    assert client.delete(f"/v1/identities/{names[0]}").json() == {"removed": names[0], "gallery_size": 1}
    for image in images_of(data, names[0]):
        after = client.post("/v1/identify", files=files("image", [image]), data={"k": "5"}).json()
        assert names[0] not in [c["identity"] for c in after["candidates"]]
        assert after["identity"] in (None, names[1])
    assert Gallery.load(tmp_path / "g").identities == (names[1],)
    assert client.delete(f"/v1/identities/{names[0]}").status_code == 404
    slash = client.post(
        "/v1/enroll", data={"identity": "a/b c"}, files=files("images", images_of(data, names[1])[:1])
    )
    assert slash.status_code == 200 and client.delete("/v1/identities/a%2Fb%20c").json()["removed"] == "a/b c"
    # removing the last identity erases the gallery; the next enrolment creates it again
    assert client.delete(f"/v1/identities/{names[1]}").json()["gallery_size"] == 0
    assert not (tmp_path / "g" / GALLERY_FILE).exists() and not list((tmp_path / "g").glob("*.safetensors"))
    assert client.get("/v1/identities").json() == {"identities": [], "gallery_size": 0}
    again = client.post(
        "/v1/enroll", data={"identity": names[1]}, files=files("images", images_of(data, names[1])[:2])
    )
    assert again.status_code == 200 and Gallery.load(tmp_path / "g").identities == (names[1],)


def test_a_restarted_service_serves_what_was_enrolled(make_client, tiny_run, names, tmp_path: Path) -> None:
    _, data = tiny_run
    first = make_client()
    for name in names:
        first.post(
            "/v1/enroll",
            json={
                "identity": name,
                "images": [base64.b64encode(p.read_bytes()).decode() for p in images_of(data, name)[:2]],
            },
        )
    query = files("image", images_of(data, names[0])[4:5])
    before = first.post("/v1/identify", files=query).json()
    first.__exit__(None, None, None)
    second = make_client()
    assert second.get("/v1/identities").json()["gallery_size"] == 2
    after = second.post("/v1/identify", files=query).json()
    assert [c["identity"] for c in after["candidates"]] == [c["identity"] for c in before["candidates"]]
    assert after["threshold"] == pytest.approx(before["threshold"])


def test_embed_gives_the_library_embeddings(make_client, tiny_run) -> None:
    run, data = tiny_run
    paths = images_of(data, "id01")[:3]
    out = make_client().post("/v1/embed", files=files("images", paths)).json()
    want = EmbeddingModel.from_checkpoint(run).embed([str(p) for p in paths])
    assert out["names"] == [p.name for p in paths] and out["dim"] == want.shape[1]
    np.testing.assert_allclose(np.array(out["embeddings"]), want, rtol=1e-5, atol=1e-6)


def test_health_readiness_metrics_and_info(make_client, tiny_run) -> None:
    _, data = tiny_run
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["fingerprint"].startswith("sha256:")
    two = files("image_a", images_of(data, "id00")[:1]) + files("image_b", images_of(data, "id00")[1:2])
    client.post("/v1/verify", files=two)
    client.post("/v1/verify", files=two[:1])  # 422: one image
    text = client.get("/metrics").text
    assert 'siamese_requests_total{endpoint="/v1/verify",status="200"} 1.0' in text
    assert 'siamese_errors_total{endpoint="/v1/verify",status="422"} 1.0' in text
    assert (
        'siamese_batch_size_count{worker="inference"} 1.0' in text
        and "siamese_request_seconds_bucket" in text
    )
    info = client.get("/v1/info").json()
    assert (
        info["gallery"] == {"size": 0, "fusions": [], "fpir": None}
        and info["limits"]["file_bytes"] == 5 * 2**20
    )
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/openapi.json").json()["paths"].keys() >= {"/v1/verify", "/v1/identify", "/v1/enroll"}


def test_without_a_gallery_identify_and_enrol_say_so(make_client, tiny_run) -> None:
    _, data = tiny_run
    client = make_client(gallery=None)
    for path, field in (("/v1/identify", "image"), ("/v1/enroll", "images")):
        r = client.post(path, files=files(field, images_of(data, "id00")[:1]), data={"identity": "x"})
        assert r.status_code == 409 and "--gallery" in r.json()["detail"]


# -- errors: one line, the right status, never a 500 ---------------------------------------------------------


def _one_line(response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    for word in words:
        assert word in detail, detail
    return detail


def test_bad_inputs_get_one_line_4xx(make_client, tiny_run, tmp_path: Path) -> None:
    _, data = tiny_run
    client = make_client()
    good = images_of(data, "id00")[0]
    png = good.read_bytes()
    cases = [
        ({"image_a": ("a.png", b"this is not an image"), "image_b": ("b.png", png)}, 415, "not an image"),
        ({"image_a": ("a.png", png[: len(png) // 2]), "image_b": ("b.png", png)}, 422, "image_a"),
        ({"image_a": ("a.png", b""), "image_b": ("b.png", png)}, 422, "empty"),
        ({"image_a": ("a.png", png)}, 422, "image_b"),
    ]
    for sent, status, word in cases:
        _one_line(client.post("/v1/verify", files=sent), status, word)
    _one_line(
        client.post("/v1/verify", content=b"x", headers={"content-type": "text/plain"}), 415, "multipart"
    )
    _one_line(client.post("/v1/verify", json={"image_a": "%%%", "image_b": "x"}), 422, "base64")
    _one_line(client.post("/v1/verify", json=[1, 2]), 422, "object")
    _one_line(
        client.post("/v1/verify", content=b"{", headers={"content-type": "application/json"}), 422, "JSON"
    )
    _one_line(client.post("/v1/identify", files=files("image", [good]), data={"k": "many"}), 422, "'k'")
    _one_line(client.post("/v1/enroll", files=files("images", [good])), 422, "identity")
    _one_line(
        client.post("/v1/enroll", files=files("images", [good]), data={"identity": " x"}), 422, "identity"
    )
    bad_multipart = {"content-type": "multipart/form-data; boundary=zzz"}
    _one_line(client.post("/v1/verify", content=b"--zzz\r\nbroken", headers=bad_multipart), 422)
    _one_line(
        client.post("/v1/verify", files={"image_a": ("a.png", png)}, data={"claim": "nobody"}), 409, "gallery"
    )


def test_limits_refuse_large_files_requests_and_pixel_bombs(make_client, tiny_run) -> None:
    from io import BytesIO

    from PIL import Image

    _, data = tiny_run
    png = images_of(data, "id00")[0].read_bytes()
    client = make_client(max_file_bytes=len(png) - 1)
    _one_line(
        client.post("/v1/verify", files={"image_a": ("a.png", png), "image_b": ("b.png", png)}), 413, "image"
    )
    encoded = base64.b64encode(png).decode()
    _one_line(client.post("/v1/verify", json={"image_a": encoded, "image_b": encoded}), 413, "limit")

    small = make_client(max_request_bytes=1000)
    _one_line(
        small.post("/v1/verify", content=b"x" * 2000, headers={"content-type": "application/json"}),
        413,
        "request",
    )

    buffer = BytesIO()
    Image.new("1", (8000, 6000)).save(buffer, format="PNG")  # 48 megapixels in a few kB
    bomb = buffer.getvalue()
    assert len(bomb) < 100_000
    default = make_client()
    sent = {"image_a": ("bomb.png", bomb), "image_b": ("b.png", png)}
    _one_line(default.post("/v1/verify", files=sent), 413, "megapixel")
    buffer = BytesIO()
    Image.new("1", (20000, 20000)).save(buffer, format="PNG")  # beyond Pillow's own bomb guard too
    _one_line(
        default.post("/v1/verify", files={**sent, "image_a": ("b.png", buffer.getvalue())}), 413, "pixels"
    )


# -- auth --------------------------------------------------------------------------------------------------


def test_keys_scopes_and_revocation(make_client, tiny_run, tmp_path: Path) -> None:
    _, data = tiny_run
    keyfile = tmp_path / "keys.json"
    keys = {}
    for scope in ("verify", "enroll", "admin"):
        result = runner.invoke(cli, ["keys", "add", str(keyfile), "--scope", scope, "--name", scope])
        assert result.exit_code == 0, result.output
        keys[scope] = result.stdout.strip().splitlines()[-1]
    stored = keyfile.read_text()
    assert all(key not in stored for key in keys.values())  # only hashes are kept
    assert keyfile.stat().st_mode & 0o077 == 0

    client = make_client(keys=keyfile)
    two = files("image_a", images_of(data, "id00")[:1]) + files("image_b", images_of(data, "id00")[1:2])
    enrol = {"data": {"identity": "someone"}, "files": files("images", images_of(data, "id00")[:2])}
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    _one_line(client.post("/v1/verify", files=two), 401, "API key")
    _one_line(client.post("/v1/verify", files=two, headers={"x-api-key": "sia_wrong"}), 401, "unknown")
    assert client.post("/v1/verify", files=two, headers={"x-api-key": keys["verify"]}).status_code == 200
    assert (
        client.post(
            "/v1/verify", files=two, headers={"Authorization": f"Bearer {keys['verify']}"}
        ).status_code
        == 200
    )
    _one_line(client.post("/v1/enroll", headers={"x-api-key": keys["verify"]}, **enrol), 403, "enroll")
    assert client.post("/v1/enroll", headers={"x-api-key": keys["enroll"]}, **enrol).status_code == 200
    _one_line(client.get("/metrics", headers={"x-api-key": keys["enroll"]}), 403, "admin")
    assert client.get("/metrics", headers={"x-api-key": keys["admin"]}).status_code == 200
    assert client.delete("/v1/identities/someone", headers={"x-api-key": keys["admin"]}).status_code == 200

    assert runner.invoke(cli, ["keys", "remove", str(keyfile), "verify"]).exit_code == 0
    _one_line(client.post("/v1/verify", files=two, headers={"x-api-key": keys["verify"]}), 401, "revoked")
    listed = runner.invoke(cli, ["keys", "list", str(keyfile)])
    assert "enroll" in listed.stdout and "verify " not in listed.stdout and keys["admin"] not in listed.stdout


def test_cors_is_off_unless_an_origin_is_given(make_client) -> None:
    preflight = {"Origin": "https://example.org", "Access-Control-Request-Method": "POST"}
    off = make_client().options("/v1/verify", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on = make_client(cors=("https://example.org",)).options("/v1/verify", headers=preflight)
    assert on.headers["access-control-allow-origin"] == "https://example.org"


def test_api_answers_are_not_cached(make_client) -> None:
    r = make_client().get("/v1/identities")
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"


def test_an_onnx_export_serves_the_same_decisions(make_client, tiny_run, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    run, data = tiny_run
    exported = tmp_path / "model.onnx"
    result = runner.invoke(cli, ["export", "--model", str(run), "--format", "onnx", "--out", str(exported)])
    assert result.exit_code == 0, result.output
    a, b = images_of(data, "id02")[0], images_of(data, "id05")[0]
    two = files("image_a", [a]) + files("image_b", [b])
    torch_answer = make_client().post("/v1/verify", files=two).json()
    onnx_answer = make_client(onnx=exported).post("/v1/verify", files=two).json()
    assert onnx_answer["same"] == torch_answer["same"] and onnx_answer["model"] == torch_answer["model"]
    assert onnx_answer["distance"] == pytest.approx(torch_answer["distance"], abs=1e-4)
    # an export of another model is refused, in one line
    other = tmp_path / "other.onnx.json"
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    (tmp_path / "other.onnx").write_bytes(exported.read_bytes())
    other.write_text(json.dumps({**meta, "source_checkpoint": str(tmp_path / "elsewhere")}))
    from threadpoolctl import threadpool_info

    from siamese.errors import SiameseError
    from siamese.serve import ServeConfig, create_app

    before = [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()]
    app = create_app(ServeConfig(model=run, onnx=tmp_path / "other.onnx", no_auth=True))
    with pytest.raises(SiameseError):
        app.state.service.load()
    # a service that failed to load gives the BLAS/OpenMP threads back
    assert [(pool["internal_api"], pool["num_threads"]) for pool in threadpool_info()] == before
