"""`siamese serve` as users start it: safe-by-default refusals in one line, and a real service process
killed with SIGKILL after an enrolment serves that enrolment when started again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from siamese.cli.app import app as cli
from siamese.errors import ConfigError
from siamese.serve import ServeConfig
from tests.serve.conftest import files, free_port, images_of

runner = CliRunner(env={"COLUMNS": "200"})


def _error_line(args: list[str]) -> str:
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_serving_is_safe_by_default(tiny_run, tmp_path: Path) -> None:
    run, _ = tiny_run
    model = ["serve", "--model", str(run)]
    assert "siamese keys add" in _error_line(model)
    assert "loopback" in _error_line([*model, "--no-auth", "--host", "0.0.0.0"])
    assert "no key file" in _error_line([*model, "--keys", str(tmp_path / "missing.json")])
    assert "--max-batch" in _error_line([*model, "--no-auth", "--max-batch", "0"])
    assert "checkpoint" in _error_line(["serve", "--model", str(tmp_path / "nothing"), "--no-auth"]).lower()
    with pytest.raises(ConfigError, match="contradict"):
        ServeConfig(model=run, no_auth=True, keys=tmp_path / "k.json")
    assert ServeConfig(model=run, no_auth=True, host="::1").host == "::1"


def test_keys_cli_refuses_bad_scopes_and_names(tmp_path: Path) -> None:
    keyfile = str(tmp_path / "keys.json")
    assert "scopes are" in _error_line(["keys", "add", keyfile, "--scope", "root"])
    assert runner.invoke(cli, ["keys", "add", keyfile, "--scope", "verify", "--name", "a"]).exit_code == 0
    assert "taken" in _error_line(["keys", "add", keyfile, "--scope", "verify", "--name", "a"])
    assert "no key called" in _error_line(["keys", "remove", keyfile, "b"])


def _start(run: Path, gallery: Path, port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "siamese", "serve", "--model", str(run), "--gallery", str(gallery)]
    command += ["--no-auth", "--port", str(port)]
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"the service did not start: {log.read_text()}")


def test_an_enrolment_survives_kill_9_and_restart(tiny_run, tmp_path: Path) -> None:
    run, data = tiny_run
    port, gallery, log = free_port(), tmp_path / "g", tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    process = _start(run, gallery, port, log)
    try:
        for name in ("id00", "id01"):
            r = httpx.post(
                f"{url}/v1/enroll", data={"identity": name}, files=files("images", images_of(data, name)[:3])
            )
            assert r.status_code == 200, r.text
        before = httpx.post(f"{url}/v1/identify", files=files("image", images_of(data, "id01")[4:5])).json()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
    process = _start(run, gallery, port, log)
    try:
        listed = httpx.get(f"{url}/v1/identities").json()
        assert [row["identity"] for row in listed["identities"]] == ["id00", "id01"]
        after = httpx.post(f"{url}/v1/identify", files=files("image", images_of(data, "id01")[4:5])).json()
        assert after["candidates"] == before["candidates"]
    finally:
        process.terminate()
        process.wait(30)
    assert "Traceback" not in log.read_text()
