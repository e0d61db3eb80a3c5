"""End to end in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium): open
the page, change a setting and add a frame range, see the frame change, save, run ``merge --config`` on the saved
file, and check the merged frame is the one the page showed (and the one its merge button wrote); then the other
three views. Writes a screenshot of the page (``studio.png`` in the test's folder, and to
``$FACELAB_STUDIO_SCREENSHOT`` when set)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from studio_testkit import MODEL, build_workspace, running  # noqa: E402

from facelab.cli.root import cli  # noqa: E402

pytestmark = pytest.mark.e2e

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
DRIVER = shutil.which("chromedriver")
# seconds: Chromium on two busy cores is slow to start and to paint
WAIT = int(os.environ.get("FACELAB_STUDIO_WAIT", "180"))

READ_IMAGE = """
const done = arguments[arguments.length - 1];
fetch(document.getElementById(arguments[0]).src).then((r) => r.arrayBuffer()).then((buf) => {
  let s = ""; const bytes = new Uint8Array(buf);
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  done(btoa(s));
}).catch((e) => done("error: " + e));
"""


def _decode(b64: str) -> np.ndarray:
    assert not b64.startswith("error"), b64
    img = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture
def browser(tmp_path):
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (requirements-dev.txt)")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download a browser or driver
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,860", f"--user-data-dir={tmp_path / 'profile'}", "--no-first-run"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(WAIT)
    driver.set_script_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def test_tune_save_and_merge_match_what_the_page_showed(browser, tmp_path, astronaut):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    ws = build_workspace(tmp_path / "workspace", astronaut)
    wait = WebDriverWait(browser, WAIT, poll_frequency=0.2)

    def shown() -> dict:
        return browser.execute_script(
            "const i = document.getElementById('img-over');"
            "return {state: document.body.dataset.renderState, settings: i.dataset.settings || '', "
            "pos: i.dataset.pos || '', error: document.getElementById('error').textContent};")

    with running(ws, ws.model(MODEL)) as server:
        browser.get(server.url)
        wait.until(lambda d: shown()["state"] == "idle" and shown()["pos"] == "0")
        assert shown()["error"] == ""
        before = _decode(browser.execute_async_script(READ_IMAGE, "img-over"))
        # type a new erode value, as a person would, into the number box beside the slider
        box = browser.find_element(By.ID, "set-erode-num")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("60", Keys.TAB)
        wait.until(lambda d: '"erode":60' in shown()["settings"] and shown()["state"] == "idle")
        assert browser.find_element(By.ID, "set-erode").get_attribute("value") == "60"
        after = _decode(browser.execute_async_script(READ_IMAGE, "img-over"))
        assert after.shape == before.shape == (512, 512, 3)
        assert np.abs(after.astype(int) - before.astype(int)).max() > 20  # the frame changed

        # a frame range from the current frame on, with its own blur
        browser.find_element(By.ID, "range-add").click()
        assert browser.find_element(By.ID, "scope").get_attribute("value") == "0"
        box = browser.find_element(By.ID, "set-blur-num")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys("0", Keys.TAB)
        wait.until(lambda d: '"ranges":[{"frames":"1","blur":0}]' in shown()["settings"] and shown()["state"] == "idle")
        assert "overridden" in browser.find_element(By.ID, "row-blur").get_attribute("class")
        ranged = _decode(browser.execute_async_script(READ_IMAGE, "img-over"))
        assert not np.array_equal(ranged, after)

        browser.find_element(By.CSS_SELECTOR, ".views button[data-view=split]").click()
        assert browser.find_element(By.ID, "split-label").is_displayed()
        assert "inset" in browser.find_element(By.ID, "img-over").get_attribute("style")
        browser.find_element(By.CSS_SELECTOR, ".views button[data-view=swapped]").click()
        wait.until(lambda d: shown()["state"] == "idle")

        browser.find_element(By.ID, "save").click()
        wait.until(lambda d: d.find_element(By.ID, "save-status").text == "saved")
        browser.find_element(By.ID, "merge-start").click()  # the full merge, with its progress bar
        wait.until(lambda d: d.find_element(By.ID, "merge-status").text.startswith(("done", "failed")))
        assert browser.find_element(By.ID, "merge-status").text.startswith("done 5/5")
        assert browser.find_element(By.ID, "merge-progress").get_attribute("value") == "5"
        by_button = cv2.cvtColor(cv2.imread(str(ws.merged / "000001.png")), cv2.COLOR_BGR2RGB)
        assert np.abs(by_button.astype(int) - ranged.astype(int)).max() <= 2
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(tmp_path / "studio.png"))
        if os.environ.get("FACELAB_STUDIO_SCREENSHOT"):
            browser.save_screenshot(os.environ["FACELAB_STUDIO_SCREENSHOT"])
        # the other three views
        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=train]").click()
        wait.until(lambda d: MODEL in d.find_element(By.ID, "models").text)
        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=faces]").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces-grid figure")) == 4)
        browser.find_element(By.CSS_SELECTOR, "#faces-grid figure").click()
        wait.until(lambda d: "data_dst/000001.png" in d.find_element(By.ID, "face-detail").text)
        assert len(browser.find_elements(By.CSS_SELECTOR, "#face-detail svg circle")) == 68  # landmarks drawn
        # select the page, move it to the trash, and restore it from there: files move, nothing is deleted
        aligned = sorted(p.name for p in ws.aligned("dst").iterdir() if p.is_file())
        browser.find_element(By.ID, "faces-select-page").click()
        assert browser.find_element(By.ID, "faces-selected").text == "4 selected"
        browser.find_element(By.ID, "faces-trash").click()
        wait.until(lambda d: d.find_element(By.ID, "faces-status").text == "4 moved")
        wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, "#faces-grid figure"))
        trash = ws.aligned("dst").parent / (ws.aligned("dst").name + "_trash")
        assert sorted(p.name for p in trash.iterdir() if p.is_file()) == aligned
        Select(browser.find_element(By.ID, "faces-place")).select_by_value("trash")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces-grid figure")) == 4)
        browser.find_element(By.ID, "faces-select-page").click()
        browser.find_element(By.ID, "faces-restore").click()
        wait.until(lambda d: d.find_element(By.ID, "faces-status").text == "4 moved")
        assert sorted(p.name for p in ws.aligned("dst").iterdir() if p.is_file()) == aligned
        Select(browser.find_element(By.ID, "faces-place")).select_by_value("aligned")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#faces-grid figure")) == 4)
        browser.find_element(By.CSS_SELECTOR, "#tabs button[data-tab=workspace]").click()
        wait.until(lambda d: d.find_element(By.ID, "next-command").text.startswith("python main.py"))
        assert browser.find_element(By.ID, "error").text == ""
        assert (ws.root / ".studio" / "thumbs" / "dst").is_dir()  # the grid's thumbnails were cached on disk

    config = ws.root / "merge_settings.json"
    saved = json.loads(config.read_text())
    assert saved["defaults"]["erode"] == 60 and saved["ranges"] == [{"frames": "1", "blur": 0}]
    res = CliRunner().invoke(cli, ["merge", "-w", str(ws.root), "--config", str(config), "--device", "cpu",
                                   "--workers", "0", "--force"], obj={}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    merged = cv2.cvtColor(cv2.imread(str(ws.merged / "000001.png")), cv2.COLOR_BGR2RGB)
    # the same merge functions on the same inputs; batched model calls may round a pixel apart
    assert np.abs(merged.astype(int) - ranged.astype(int)).max() <= 2
    assert np.abs(merged.astype(int) - after.astype(int)).max() > 20
