"""The page at `/` (siamese/serve/static/index.html) in a real browser: headless Chromium driven by selenium.

The service runs with uvicorn in a thread on a loopback port. What the page shows is checked against
what the CLI (`siamese verify --json`) and the API answer for the same files. One browser serves the
whole module; each test loads the page afresh.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from siamese.cli.app import app as cli
from siamese.serve import ServeConfig, create_app
from siamese.serve.auth import KeyStore
from tests.serve.conftest import served

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service as DriverService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the browser fixture skips
    webdriver = None

WAIT_S = 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# -- the service and the browser --


def serving(config: ServeConfig) -> AbstractContextManager[str]:
    """The service for `config` running in a thread on a free loopback port (its base URL)."""
    return served(create_app(config))


@pytest.fixture(scope="module")
def service(tiny_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The service without keys, for an empty gallery folder (the first enrolment creates the gallery)."""
    run, _ = tiny_run
    gallery = tmp_path_factory.mktemp("page-gallery") / "g"
    with serving(ServeConfig(model=run, gallery=gallery, no_auth=True)) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_service(
    tiny_run: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """The service with API keys and without a gallery; yields (URL, a key with the verify scope)."""
    run, _ = tiny_run
    keys = tmp_path_factory.mktemp("page-keys") / "keys.json"
    store = KeyStore()
    key = store.add("page", ["verify"])
    store.save(keys)
    with serving(ServeConfig(model=run, keys=keys)) as url:
        yield url, key


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium with a fake camera; skips when Chromium, chromedriver or selenium is missing."""
    if webdriver is None:
        pytest.skip("selenium is not installed (pip install selenium)")
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        pytest.skip("Chromium and chromedriver are not installed (apt install chromium chromium-driver)")
    options = Options()
    options.binary_location = chromium  # with the driver path below: selenium-manager never runs
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,1000",
        "--disable-background-networking",
        "--use-fake-device-for-media-stream",  # a test-pattern camera
        "--use-fake-ui-for-media-stream",  # granted without a prompt
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=DriverService(executable_path=driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# -- driving the page --


def _open(driver: Any, url: str) -> None:
    """Load the page and wait until it has asked the service what it serves."""
    driver.get(url)
    _wait(driver, lambda d: _by_id(d, "info").get_attribute("data-fingerprint") or _text(d, "info-error"))


def _wait(driver: Any, condition: Callable[[Any], Any]) -> Any:
    return WebDriverWait(driver, WAIT_S).until(condition)


def _by_id(driver: Any, element_id: str) -> Any:
    return driver.find_element(By.ID, element_id)


def _text(driver: Any, element_id: str) -> str:
    return _by_id(driver, element_id).text


def _upload(driver: Any, input_id: str, *paths: Path) -> None:
    _by_id(driver, input_id).send_keys("\n".join(str(p) for p in paths))


def _submit(driver: Any, panel: str) -> Any:
    """Press the panel's button and wait for its answer; returns the result element."""
    _by_id(driver, f"{panel}-submit").click()
    result = _by_id(driver, f"{panel}-result")
    _wait(driver, lambda d: result.get_attribute("data-state") in ("done", "error"))
    return result


def _verify_pair(driver: Any, a: Path, b: Path) -> Any:
    _upload(driver, "verify-a", a)
    _upload(driver, "verify-b", b)
    return _submit(driver, "verify")


def _enrol(driver: Any, name: str, paths: list[Path]) -> Any:
    _by_id(driver, "enroll-name").send_keys(name)
    _upload(driver, "enroll-images", *paths)
    return _submit(driver, "enroll")


def _files(path: Path) -> dict[str, tuple[str, bytes, str]]:
    return {"image": (path.name, path.read_bytes(), "image/png")}


# -- the tests --


def test_the_page_is_one_offline_file_describing_the_model(browser: Any, service: str) -> None:
    html = httpx.get(service).text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|@import""", html)
    _open(browser, service)
    fingerprint = httpx.get(f"{service}/readyz").json()["fingerprint"]
    info = _by_id(browser, "info")
    assert info.get_attribute("data-fingerprint") == fingerprint
    assert _text(browser, "info-fingerprint") == fingerprint[: fingerprint.index(":") + 13]  # sha256:<12 hex>
    assert info.get_attribute("data-gallery") == "0"
    assert _text(browser, "info-error") == ""
    assert _by_id(browser, "enroll-panel").is_displayed() and _by_id(browser, "identify-panel").is_displayed()
    assert not _by_id(browser, "no-gallery").is_displayed()


@pytest.mark.parametrize(
    ("a", "b"), [("id00/img_0.png", "id00/img_1.png"), ("id00/img_0.png", "id03/img_2.png")]
)
def test_verify_shows_what_the_cli_decides(
    browser: Any, service: str, tiny_run: tuple[Path, Path], a: str, b: str
) -> None:
    run, data = tiny_run
    _open(browser, service)
    result = _verify_pair(browser, data / a, data / b)
    assert _text(browser, "verify-error") == ""
    cli_result = CliRunner().invoke(
        cli, ["verify", str(data / a), str(data / b), "--model", str(run), "--json"]
    )
    assert cli_result.exit_code == 0, cli_result.output
    expected = json.loads(cli_result.stdout)
    assert result.get_attribute("data-same") == str(expected["same"]).lower()
    assert float(result.get_attribute("data-distance")) == pytest.approx(expected["distance"], rel=1e-4)
    assert _text(browser, "verify-decision") == ("Same person" if expected["same"] else "Different people")
    captions = [c.text for c in result.find_elements(By.CSS_SELECTOR, "figcaption")]
    assert captions == [f"image A: {Path(a).name}", f"image B: {Path(b).name}"]
    assert (
        result.find_element(By.CSS_SELECTOR, ".bar[role=img]")
        .get_attribute("aria-label")
        .startswith("distance")
    )


def test_a_file_that_is_not_an_image_shows_the_service_message(
    browser: Any, service: str, tiny_run: tuple[Path, Path], tmp_path: Path
) -> None:
    _, data = tiny_run
    fake = tmp_path / "notes.png"
    fake.write_text("these are notes, not pixels\n")
    _open(browser, service)
    result = _verify_pair(browser, fake, data / "id00/img_0.png")
    real = data / "id00/img_0.png"
    answer = httpx.post(
        f"{service}/v1/verify",
        files={
            "image_a": (fake.name, fake.read_bytes(), "image/png"),
            "image_b": (real.name, real.read_bytes(), "image/png"),
        },
    )
    assert answer.status_code == 415
    shown = _text(browser, "verify-error")
    assert shown == answer.json()["detail"]
    assert "not an image" in shown
    assert result.get_attribute("data-state") == "error" and result.get_attribute("data-same") is None


def test_a_denied_camera_leaves_uploads_working(
    browser: Any, service: str, tiny_run: tuple[Path, Path]
) -> None:
    _, data = tiny_run
    _open(browser, service)
    denied = "() => Promise.reject(new DOMException('denied', 'NotAllowedError'))"
    browser.execute_script(f"navigator.mediaDevices.getUserMedia = {denied};")
    _by_id(browser, "camera-start").click()
    _wait(browser, lambda d: "denied" in _text(d, "camera-status"))
    assert not _by_id(browser, "camera-shot").is_enabled()
    result = _verify_pair(browser, data / "id01/img_0.png", data / "id01/img_1.png")
    assert result.get_attribute("data-state") == "done" and result.get_attribute("data-same") in (
        "true",
        "false",
    )


def test_a_camera_shot_is_sent_as_an_image_one_request_at_a_time(
    browser: Any, service: str, tiny_run: tuple[Path, Path]
) -> None:
    _, data = tiny_run
    _open(browser, service)
    _by_id(browser, "camera-start").click()
    _wait(
        browser, lambda d: d.execute_script("return document.getElementById('camera-video').videoWidth > 0")
    )
    shot = _by_id(browser, "camera-shot")
    _wait(browser, lambda d: shot.is_enabled())
    browser.execute_script(  # the shot button's state each time the verify result turns busy
        "window.shotWhileBusy = [];"
        "const result = document.getElementById('verify-result');"
        "new MutationObserver(() => { if (result.dataset.state === 'busy')"
        " window.shotWhileBusy.push(document.getElementById('camera-shot').disabled); })"
        ".observe(result, {attributes: true, attributeFilter: ['data-state']});"
    )
    _upload(browser, "verify-a", data / "id02/img_0.png")
    Select(_by_id(browser, "camera-target")).select_by_value("verify-b")
    _by_id(browser, "camera-send").click()
    shot.click()
    result = _by_id(browser, "verify-result")
    _wait(browser, lambda d: result.get_attribute("data-state") in ("done", "error"))
    assert _text(browser, "verify-error") == ""
    assert result.get_attribute("data-same") in ("true", "false")
    captions = [c.text for c in result.find_elements(By.CSS_SELECTOR, "figcaption")]
    assert captions[0] == "image A: img_0.png" and re.fullmatch(r"image B: camera-.*\.jpg", captions[1])
    assert browser.execute_script("return window.shotWhileBusy") == [True]
    _wait(browser, lambda d: shot.is_enabled())
    _by_id(browser, "camera-stop").click()
    assert not shot.is_enabled()


def test_enrolled_identities_are_identified_as_the_api_answers(
    browser: Any, service: str, tiny_run: tuple[Path, Path]
) -> None:
    _, data = tiny_run
    _open(browser, service)
    for name in ("id00", "id01"):
        result = _enrol(browser, name, [data / name / f"img_{k}.png" for k in range(4)])
        assert _text(browser, "enroll-error") == ""
        assert result.get_attribute("data-identity") == name
    listed = httpx.get(f"{service}/v1/identities").json()["identities"]
    assert {row["identity"] for row in listed} >= {"id00", "id01"}
    _wait(
        browser,
        lambda d: (
            [
                li.get_attribute("data-identity")
                for li in d.find_elements(By.CSS_SELECTOR, "#identities-list li")
            ]
            == [row["identity"] for row in listed]
        ),
    )
    assert _by_id(browser, "info").get_attribute("data-gallery") == str(len(listed))

    query = data / "id00/img_4.png"  # not among the references
    _upload(browser, "identify-image", query)
    result = _submit(browser, "identify")
    assert _text(browser, "identify-error") == ""
    rows = result.find_elements(By.CSS_SELECTOR, "#identify-table tbody tr")
    answer = httpx.post(f"{service}/v1/identify", files=_files(query), data={"k": "5"}).json()
    assert [r.get_attribute("data-identity") for r in rows] == [c["identity"] for c in answer["candidates"]]
    assert rows[0].get_attribute("data-identity") == "id00"
    assert result.get_attribute("data-identity") == (answer["identity"] or "")
    decision = _text(browser, "identify-decision")
    if answer["identity"]:
        assert decision == f"Identified: {answer['identity']}"
    else:
        assert decision.startswith("Unknown")


def test_a_claim_is_decided_as_the_api_decides(
    browser: Any, service: str, tiny_run: tuple[Path, Path]
) -> None:
    _, data = tiny_run
    if not any(r["identity"] == "id01" for r in httpx.get(f"{service}/v1/identities").json()["identities"]):
        references = [
            ("images", (f"{k}.png", (data / f"id01/img_{k}.png").read_bytes(), "image/png")) for k in range(4)
        ]
        httpx.post(f"{service}/v1/enroll", files=references, data={"identity": "id01"}).raise_for_status()
    _open(browser, service)
    _by_id(browser, "verify-mode-claim").click()
    assert not _by_id(browser, "verify-b").is_displayed()
    _wait(
        browser,
        lambda d: "id01" in [o.get_attribute("value") for o in Select(_by_id(d, "verify-claim")).options],
    )
    Select(_by_id(browser, "verify-claim")).select_by_value("id01")
    query = data / "id01/img_4.png"
    _upload(browser, "verify-a", query)
    result = _submit(browser, "verify")
    answer = httpx.post(
        f"{service}/v1/verify",
        files={"image_a": (query.name, query.read_bytes(), "image/png")},
        data={"claim": "id01"},
    ).json()
    assert result.get_attribute("data-claim") == "id01"
    assert result.get_attribute("data-same") == str(answer["same"]).lower()
    assert float(result.get_attribute("data-distance")) == pytest.approx(answer["distance"], rel=1e-4)
    assert _text(browser, "verify-decision") == ("Accepted: id01" if answer["same"] else "Rejected")
    assert answer["fusion"] in result.text


def test_the_delete_button_removes_an_identity(
    browser: Any, service: str, tiny_run: tuple[Path, Path]
) -> None:
    _, data = tiny_run
    name = "temp one"  # a space: the page must URL-encode it
    reference = ("images", ("r.png", (data / "id05/img_0.png").read_bytes(), "image/png"))
    httpx.post(f"{service}/v1/enroll", files=[reference], data={"identity": name}).raise_for_status()
    _open(browser, service)
    button = _wait(
        browser, lambda d: d.find_element(By.CSS_SELECTOR, f'#identities-list button[data-identity="{name}"]')
    )
    assert button.accessible_name == f"Delete {name}"
    button.click()
    _wait(browser, expected_conditions.alert_is_present()).accept()
    _wait(
        browser,
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'#identities-list li[data-identity="{name}"]'),
    )
    assert name not in [r["identity"] for r in httpx.get(f"{service}/v1/identities").json()["identities"]]


def test_keys_and_no_gallery(
    browser: Any, keyed_service: tuple[str, str], tiny_run: tuple[Path, Path]
) -> None:
    url, key = keyed_service
    _, data = tiny_run
    _open(browser, url)
    assert "valid API key with the right scope is needed" in _text(browser, "info-error")
    _by_id(browser, "api-key").send_keys(key, Keys.TAB)  # `change` asks the service again
    _wait(browser, lambda d: _by_id(d, "info").get_attribute("data-gallery") == "none")
    assert _text(browser, "info-error") == ""
    assert browser.execute_script("return sessionStorage.getItem('siamese-api-key')") == key
    assert _by_id(browser, "no-gallery").is_displayed()
    assert (
        not _by_id(browser, "identify-panel").is_displayed()
        and not _by_id(browser, "enroll-panel").is_displayed()
    )
    assert not _by_id(browser, "verify-mode-claim").is_enabled()
    result = _verify_pair(browser, data / "id02/img_0.png", data / "id02/img_1.png")
    assert result.get_attribute("data-same") in ("true", "false")
    _open(browser, url)  # the key outlives a reload of the tab
    assert _by_id(browser, "api-key").get_attribute("value") == key
    assert _by_id(browser, "info").get_attribute("data-gallery") == "none"
    browser.execute_script("sessionStorage.clear()")


def test_screenshot(browser: Any, service: str, tiny_run: tuple[Path, Path], tmp_path: Path) -> None:
    _, data = tiny_run
    _open(browser, service)
    _verify_pair(browser, data / "id00/img_0.png", data / "id00/img_1.png")
    _upload(browser, "identify-image", data / "id00/img_3.png")
    _submit(browser, "identify")
    page_height, chrome = browser.execute_script(
        "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
    )
    browser.set_window_size(1200, page_height + chrome)  # the whole page in one shot
    path = tmp_path / "page.png"
    assert browser.get_screenshot_as_file(str(path))
    image = path.read_bytes()
    assert image.startswith(PNG_SIGNATURE) and len(image) > 1000
    if os.environ.get("SIAMESE_SCREENSHOT"):
        Path(os.environ["SIAMESE_SCREENSHOT"]).write_bytes(image)
    browser.set_window_size(1200, 1000)
