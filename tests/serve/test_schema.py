"""Schema fuzzing: schemathesis sends what the OpenAPI schema allows (and what it does not) to every
operation of the app; every answer is 2xx or 4xx with a one-line message, never a 5xx."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from siamese.serve import ServeConfig, create_app  # noqa: E402
from tests.serve.conftest import files, images_of  # noqa: E402


@pytest.fixture(scope="module")
def api_schema(tiny_run, tmp_path_factory: pytest.TempPathFactory):
    """The OpenAPI schema of a loaded service whose gallery holds two identities."""
    from fastapi.testclient import TestClient

    run, data = tiny_run
    app = create_app(ServeConfig(model=run, gallery=tmp_path_factory.mktemp("fuzz") / "g", no_auth=True))
    app.state.service.load()
    client = TestClient(app)  # no lifespan: the service is loaded above and closed below, once
    for name in ("id00", "id01"):
        client.post("/v1/enroll", data={"identity": name}, files=files("images", images_of(data, name)[:2]))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.close()


def test_no_operation_answers_a_server_error(api_schema) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/verify", "/v1/identify", "/v1/enroll", "/v1/embed"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def answers_4xx_at_worst(case) -> None:
            response = case.call()
            assert response.status_code < 500, (case.method, case.path, response.text)
            if response.status_code >= 400 and "json" in response.headers.get("content-type", ""):
                detail = response.json()["detail"]
                assert isinstance(detail, str) and "\n" not in detail, detail

        answers_4xx_at_worst()


def test_the_schema_offers_both_upload_forms(api_schema) -> None:
    raw = api_schema.raw_schema
    body = raw["paths"]["/v1/verify"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json"}
    assert body["multipart/form-data"]["schema"]["properties"]["image_a"]["format"] == "binary"
