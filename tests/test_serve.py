"""``make serve``: the web app as a process (``python -m featurize.photo.serve``), its JSON API
against :class:`featurize.photo.predict_one.Predictor`, 200 requests from 8 threads, and the page
in a real headless Chromium."""
from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from featurize.inputs.sample import write_sample
from tests.conftest import REPO, REQUIRE_SHARED, SAMPLE_PER_CLASS
from tests.helpers import image_bytes, pattern_image

pytestmark = pytest.mark.spark

MAX_UPLOAD = 300_000
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, bytes]:
    """Upload name → bytes: 50 unseen digits, and one file of each failure the app
    answers (the names say which)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("photos")
    write_sample(str(root), per_class=5, offset=SAMPLE_PER_CLASS, with_broken=False)
    files = {p.name: p.read_bytes() for p in sorted(root.rglob("*.png"))}
    assert len(files) == 50
    png = image_bytes(pattern_image(1, (64, 64)), "PNG")
    files["not_an_image.jpg"] = b"this is text, not a JPEG\n" * 10
    files["truncated.png"] = png[: len(png) // 2]
    files["empty.png"] = b""
    # 2,000 x 1,200 = 2.4 M pixels (> MAX_PIXELS), a few KB as a flat PNG
    files["too_many_pixels.png"] = image_bytes(Image.new("RGB", (2000, 1200), (90, 140, 60)),
                                               "PNG")
    files["too_large.bin"] = np.random.default_rng(0).bytes(MAX_UPLOAD + 1)
    assert len(files["too_many_pixels.png"]) < MAX_UPLOAD
    return files


@pytest.fixture(scope="module")
def reference(trained_sample_run, photos):
    """What predict_one answers for each photo (same run, same engine, in this process)."""
    from featurize.photo.predict_one import Predictor

    predictor = Predictor(str(trained_sample_run[0]), max_pixels=MAX_PIXELS,
                          max_file_bytes=MAX_UPLOAD)
    return {name: predictor.predict(data, name, 5) for name, data in photos.items()}


@pytest.fixture(scope="module")
def server(trained_sample_run, tmp_path_factory):
    """``python -m featurize.photo.serve`` on a free port; its base URL. Its output goes to a
    file (a pipe nobody reads would block it once full). At the end the process must still
    be running (nothing a client sent stopped it)."""
    run_dir = trained_sample_run[0]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "featurize.photo.serve", "--run", str(run_dir), "--port", "0",
             "--max-upload-bytes", str(MAX_UPLOAD), "--max-pixels", str(MAX_PIXELS)],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 180
    url = None
    while url is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        found = re.search(r" on (http://127\.0\.0\.1:\d+/) ", log.read_text())
        url = found and found.group(1)
    assert url, "serve did not start:\n" + log.read_text()
    yield url
    alive = proc.poll() is None
    proc.terminate()
    proc.wait(timeout=30)
    output = log.read_text()
    assert alive, "the server stopped during the tests:\n" + output
    assert "Traceback" not in output, output


def _post(url: str, name: str, data: bytes, field: str = "image", session=None):
    import requests

    with (session or requests).post(url + "api/predict", files={field: (name, data)},
                                    timeout=60) as response:
        response.content  # read before the connection goes back
        return response


EXPECTED_STATUS = {"not_an_image.jpg": 422, "truncated.png": 422, "empty.png": 422,
                   "too_many_pixels.png": 413, "too_large.bin": 413}


def _check(name: str, response, reference) -> None:
    expected = reference[name]
    assert response.status_code == EXPECTED_STATUS.get(name, 200), (name, response.text)
    body = response.json()
    if "error" in expected:
        assert body["error"] == name.split(".")[0]
        if name != "too_large.bin":  # one byte over the limit: only the reason is compared
            assert body == expected
        return
    assert body["path"] == name and body["label"] == expected["label"]
    assert body["confidence"] == pytest.approx(expected["confidence"], abs=1e-6)
    assert [t["label"] for t in body["top"]] == [t["label"] for t in expected["top"]]
    assert [t["probability"] for t in body["top"]] == pytest.approx(
        [t["probability"] for t in expected["top"]], abs=1e-6)


def test_health(server, trained_sample_run):
    import json

    import requests

    run_dir = trained_sample_run[0]
    health = requests.get(server + "api/health", timeout=10).json()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert health["status"] == "ok" and health["run"] == run_dir.name
    assert health["run_id"] == manifest["pca"]["model_id"]
    assert health["labels"] == 10 and health["label_names"] == [str(d) for d in range(10)]
    assert health["engine"]["name"] == manifest["engine"]["name"]


def test_api_answers_as_predict_one_and_refuses_bad_uploads(server, photos, reference):
    import requests

    for name, data in photos.items():
        _check(name, _post(server, name, data), reference)
    missing = _post(server, "x.png", photos["0_060.png"], field="photo")
    assert missing.status_code == 400 and missing.json()["error"] == "no_image"
    for top in ("two", "0", "-1"):
        bad_top = requests.post(server + f"api/predict?top={top}",
                                files={"image": ("a.png", photos["0_060.png"])}, timeout=60)
        assert bad_top.status_code == 400 and bad_top.json()["error"] == "bad_request", top
    # over Flask's limit (the upload limit + 64 KiB for the envelope): its JSON 413
    over = _post(server, "over.bin", bytes(MAX_UPLOAD + 100_000))
    assert over.status_code == 413 and over.json()["error"] == "too_large"
    assert over.headers["Content-Type"] == "application/json"
    # over twice that: waitress refuses the body itself, before Flask sees it (its own
    # plain-text page, not the app's JSON), and goes on serving
    huge = _post(server, "huge.bin", bytes(3 * MAX_UPLOAD + 200_000))
    assert huge.status_code == 413
    assert huge.headers["Content-Type"].startswith("text/plain"), huge.headers
    assert huge.text.startswith("Request Entity Too Large") and huge.text.rstrip().endswith(
        "(generated by waitress)"), huge.text
    three = requests.post(server + "api/predict?top=3",
                          files={"image": ("0_060.png", photos["0_060.png"])}, timeout=60)
    assert [t["label"] for t in three.json()["top"]] == [
        t["label"] for t in reference["0_060.png"]["top"][:3]]
    assert requests.get(server + "api/predict", timeout=10).status_code == 405
    page = requests.get(server, timeout=10)
    assert page.status_code == 200 and 'id="file"' in page.text


def test_200_requests_from_8_threads(server, photos, reference):
    """8 clients, each with its own keep-alive session, as a browser or a script would."""
    import requests

    names = sorted(photos)
    order = [names[i % len(names)] for i in range(200)]
    local = threading.local()

    def post(name: str):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return name, _post(server, name, photos[name], session=local.session)

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, order))
    assert len(responses) == 200
    for name, response in responses:
        _check(name, response, reference)
    statuses = Counter(r.status_code for _, r in responses)
    assert statuses[200] == sum(1 for n in order if n not in EXPECTED_STATUS)
    assert sum(statuses.values()) == 200


def test_one_predict_per_core_and_one_model_call_at_a_time(trained_sample_run, photos,
                                                           monkeypatch):
    """The app lets at most os.cpu_count() requests decode at once (each decode holds a
    full-size image) and calls the model one at a time (one engine, not thread-safe):
    12 clients at once on a '3-core' machine, decode and model calls each held 50 ms."""
    from featurize.photo import predict_one, serve

    predictor = predict_one.Predictor(str(trained_sample_run[0]))
    active, peak, lock = Counter(), Counter(), threading.Lock()

    def held(kind, fn):
        def call(*args, **kwargs):
            with lock:
                active[kind] += 1
                peak[kind] = max(peak[kind], active[kind])
            try:
                time.sleep(0.05)
                return fn(*args, **kwargs)
            finally:
                with lock:
                    active[kind] -= 1
        return call

    monkeypatch.setattr(predict_one, "try_preprocess", held("decode", predict_one.try_preprocess))
    predictor._extractor = held("model", predictor._extractor)
    monkeypatch.setattr(serve.os, "cpu_count", lambda: 3)
    app = serve.create_app(predictor)
    names = [n for n in sorted(photos) if n.endswith(".png") and n[0].isdigit()][:24]

    def post(name):
        return app.test_client().post("/api/predict", content_type="multipart/form-data",
                                      data={"image": (io.BytesIO(photos[name]), name)})

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(post, names))
    assert [r.status_code for r in responses] == [200] * 24
    assert (peak["decode"], peak["model"]) == (3, 1), dict(peak)


@pytest.mark.parametrize("module", ["featurize.photo.serve", "featurize.photo.predict_one"])
def test_an_unusable_run_exits_2_with_its_message(trained_sample_run, tmp_path, module):
    """As processes: no traceback, exit status 2, the message and what to run."""
    prog = module.rsplit(".", 1)[1]
    untrained = shutil.copytree(trained_sample_run[0], tmp_path / "run")
    (untrained / "models" / "classifier.npz").unlink()
    # predict_one's image need not exist: the run is refused before any image is read
    extra = ["--port", "0"] if prog == "serve" else [str(tmp_path / "photo.jpg")]
    for run, message in ((tmp_path / "nowhere", f"{tmp_path / 'nowhere'}"),
                         (untrained, f"{untrained} has no models/classifier.npz")):
        proc = subprocess.run([sys.executable, "-m", module, "--run", str(run), *extra],
                              capture_output=True, text=True, cwd=REPO, timeout=180)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.startswith(f"{prog}: ") and message in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        if run == untrained:
            assert f"make train RUN={untrained}" in proc.stderr


def _chromium():
    """Selenium's Chrome over Debian's chromium + chromium-driver (``make browser``)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (binary and driver):
        message = ("chromium and chromedriver are not installed (make browser: Debian's "
                   "chromium and chromium-driver)")
        if REQUIRE_SHARED:
            pytest.fail(f"{message}, but FEATURIZE_REQUIRE_SHARED=1")
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1000,800"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_page_in_headless_chromium(server, photos, reference, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _chromium()
    try:
        browser.get(server)
        wait = WebDriverWait(browser, 60)
        wait.until(lambda b: "10 labels" in b.find_element(By.ID, "run").text)

        name = "7_060.png"
        path = tmp_path / name
        path.write_bytes(photos[name])
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda b: b.find_element(By.ID, "label").text != "")
        expected = reference[name]
        assert browser.find_element(By.ID, "label").text == expected["label"]
        assert (browser.find_element(By.ID, "confidence").text
                == f"confidence {expected['confidence']:.3f}")
        bars = browser.find_elements(By.CSS_SELECTOR, "#top .bar")
        assert [b.find_element(By.CLASS_NAME, "name").text for b in bars] == [
            t["label"] for t in expected["top"]]
        # the image shown is the one sent: the preview decoded to the photo's size
        size = browser.execute_script(
            "const i = document.getElementById('preview');"
            "return i.complete ? [i.naturalWidth, i.naturalHeight] : null;")
        assert size == list(Image.open(io.BytesIO(photos[name])).size)
        browser.save_screenshot(str(tmp_path / "answer.png"))

        bad = tmp_path / "not_an_image.jpg"
        bad.write_bytes(photos["not_an_image.jpg"])
        browser.find_element(By.ID, "file").send_keys(str(bad))
        wait.until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert browser.find_element(By.ID, "error").text.startswith("not_an_image: ")
        assert not browser.find_element(By.ID, "result").is_displayed()

        # markup in what the server echoes stays text
        markup = tmp_path / "<b>markup<b>.png"
        markup.write_bytes(b"<b>bold</b><img src=x onerror=alert(1)>")
        browser.find_element(By.ID, "file").send_keys(str(markup))
        wait.until(lambda b: "b'<b>bold<'" in b.find_element(By.ID, "error").text)
        assert browser.find_elements(By.CSS_SELECTOR, "#error *") == []

        # a refusal that is not JSON (waitress' own 413) is shown as its status
        huge = tmp_path / "huge.png"
        huge.write_bytes(bytes(3 * MAX_UPLOAD + 200_000))
        browser.find_element(By.ID, "file").send_keys(str(huge))
        wait.until(lambda b: b.find_element(By.ID, "error").text.startswith("http_413"))

        # and the page still answers afterwards
        browser.find_element(By.ID, "file").send_keys(str(path))
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed())
        assert browser.find_element(By.ID, "label").text == expected["label"]
        if os.environ.get("FEATURIZE_KEEP_SCREENSHOT"):
            shutil.copy(tmp_path / "answer.png", os.environ["FEATURIZE_KEEP_SCREENSHOT"])
    finally:
        browser.quit()
