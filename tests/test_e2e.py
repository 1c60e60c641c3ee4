"""Browser end-to-end test: the real dashboard in headless Chromium (``make test-e2e``).

Starts ``streamlit run streamlit_app.py`` on a free port with a temporary NNKIT_HOME, visits every
page, checks for errors, runs the Quick start while using other pages, and saves screenshots under
``test-artifacts/e2e/`` (git-ignored) for a person to look at. Every browser context the tests open records
console errors, failed requests, HTTP errors and requests to any other host (an offline classroom would see
them fail), and ``_no_errors`` asserts there are none. Skips where Debian's Chromium
(``/usr/bin/chromium``, ``apt-get install chromium``) or the playwright package is missing.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from nnkit.distributed import free_port
from tests.server_helpers import wait_healthy

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("NNKIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# Generous: a loaded 2-core CI machine; on a quiet laptop the quick start takes about 30-40 s.
QUICK_START_TIMEOUT_S = float(os.environ.get("NNKIT_E2E_QUICK_START_TIMEOUT", 1800))


_SERVER_HOME: list[Path] = []  # the served NNKIT_HOME, for tests that put runs there directly


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The dashboard served on a free localhost port; yields its base URL."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")
    home = tmp_path_factory.mktemp("e2e_home")
    _SERVER_HOME.append(home)
    port = free_port()
    log = open(home / "streamlit.log", "w")
    env = dict(os.environ, NNKIT_HOME=str(home), NNKIT_DEVICE=os.environ.get("NNKIT_DEVICE", "cpu"))
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, timeout=180)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(home / "streamlit.log", ARTIFACTS / "streamlit.log")


# Streamlit's frontend, loaded at a page's own URL (a bookmark, a reload of /data), first probes
# /data/_stcore/health and /data/_stcore/host-config, and on their 404 the root's (streamlit issue #7074, open:
# the server answers 404 there on purpose, and the probe order is in the frontend bundle). Moving between pages
# inside the app does not do it. These two probes, matched by exact path, are the only thing tolerated.
_PAGE_PROBE = re.compile(r"^/[a-z_]+/_stcore/(health|host-config)$")
_PROBLEMS: dict[int, list[str]] = {}  # id(browser context) -> what went wrong in it, in order


def _is_page_probe(url: str, server: str) -> bool:
    return url.startswith(server) and bool(_PAGE_PROBE.match(url[len(server):].split("?", 1)[0]))


def _watch(context, server: str) -> None:
    """Record every console error, failed request, HTTP error and request to another host of ``context``."""
    problems = _PROBLEMS.setdefault(id(context), [])

    def on_console(msg):
        url = (msg.location or {}).get("url", "")
        if msg.type == "error" and not _is_page_probe(url, server):
            problems.append(f"console error: {msg.text} ({url})")

    def on_request(req):
        if not req.url.startswith((server, "data:", "blob:")):
            problems.append(f"request to another host: {req.url}")

    def on_failed(req):
        # net::ERR_ABORTED is a request the test's own navigation cancelled (page.goto while the last page
        # was still loading an image or a chart), not one the app got wrong.
        if req.failure != "net::ERR_ABORTED":
            problems.append(f"request failed: {req.url} ({req.failure})")

    def on_response(resp):
        if resp.status >= 400 and not (resp.status == 404 and _is_page_probe(resp.url, server)):
            problems.append(f"HTTP {resp.status}: {resp.url}")

    context.on("console", on_console)
    context.on("request", on_request)
    context.on("requestfailed", on_failed)
    context.on("response", on_response)


class _WatchedBrowser:
    """The browser, with ``_watch`` on every context it opens (``new_page`` opens a context of its own)."""

    def __init__(self, browser, server: str):
        self._browser, self._server = browser, server

    def new_context(self, **kwargs):
        context = self._browser.new_context(**kwargs)
        _watch(context, self._server)
        return context

    def new_page(self, **kwargs):
        return self.new_context(**kwargs).new_page()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield _WatchedBrowser(b, server)
        b.close()


def _pages():
    sys.path.insert(0, str(ROOT))
    import streamlit_app

    return [(title, "" if i == 0 else Path(path).stem) for i, (_, path, title, _) in enumerate(streamlit_app.PAGES)]


_BUSY_JS = """() => !!(document.querySelector('[data-testid="stSpinner"]')
    || document.querySelector('[data-testid="stSkeleton"]')
    || document.querySelector('[data-testid="stSkeletonElement"]')
    || document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')
    || document.querySelector('[data-testid="stStatusWidgetRunningManIcon"]')
    || [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].some(c => !c.querySelector('.main-svg'))
    || [...document.querySelectorAll('img')].some(i => !i.complete))"""


def _settle(page, timeout_s=180.0, quiet_s=2.0):
    """Wait until the page has been quiet for ``quiet_s``: no script running, no spinner, no skeleton of
    a lazily loaded element, every plotly chart and image drawn (Streamlit shows its running signs
    after a short delay, so one quiet look is not enough)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_s * 1000)
    end = time.monotonic() + timeout_s
    quiet_since = None
    while time.monotonic() < end:
        if page.evaluate(_BUSY_JS):
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return
        page.wait_for_timeout(250)
    raise TimeoutError(f"the page did not settle within {timeout_s:.0f} s")


def _no_errors(page):
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]').first.inner_text()
    assert "Traceback" not in page.inner_text("body")
    problems = _PROBLEMS.get(id(page.context), [])
    assert not problems, f"{page.url}: " + "; ".join(problems[:10])


def _shot(page, name):
    """Screenshot of the whole page: Streamlit scrolls inside its main element, so the viewport is
    stretched to that element's full height first."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 6000))})
    page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    page.set_viewport_size(size)


def _active_model(page) -> str:
    """The text of the sidebar's active-model selectbox (its value may sit in an input element)."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first
    values = box.locator("input").evaluate_all("els => els.map(e => e.value)")
    return box.inner_text() + " " + " ".join(values)


def test_every_page_renders(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # Last page first: the server's first request is a deep link (a bookmark), which must still get
    # the entry's navigation and sidebar.
    for title, slug in reversed(_pages()):
        page.goto(f"{server}/{slug}")
        heading = "nnkit lab" if slug == "" else title
        page.get_by_role("heading", name=heading, level=1).wait_for(timeout=120_000)
        _settle(page)
        _no_errors(page)
        sidebar = page.locator('[data-testid="stSidebar"]').inner_text()
        assert "cpu" in sidebar  # the device line of the shared sidebar, on every page
        assert "shared" not in sidebar.lower()  # no auto-discovered page list
        _shot(page, f"page-{slug or 'home'}")
    page.close()


def test_data_page_shows_the_confounder_tags(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/data")
    page.get_by_role("heading", name="Class balance").wait_for(timeout=180_000)
    _settle(page)
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="shapes-confounded").click()
    page.get_by_role("heading", name="Planted confounder: the tag masks").wait_for(timeout=180_000)
    _settle(page)
    _shot(page, "data-confounded")
    _no_errors(page)
    page.close()


def test_data_page_rejects_a_one_class_zip(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/data")
    page.get_by_role("heading", name="Upload your own images").wait_for(timeout=180_000)
    _settle(page)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("cats/readme.md", "not an image")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "cats.zip", "mimeType": "application/zip", "buffer": buf.getvalue()}])
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Import").click()
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="is not an image")
    alert.wait_for(timeout=60_000)
    _no_errors(page)
    alert.scroll_into_view_if_needed()
    _shot(page, "data-upload-error")
    page.close()


def test_train_page_trains_a_tiny_model_with_live_curves(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{server}/train")
    page.get_by_role("heading", name="Train", level=1).wait_for(timeout=120_000)
    _settle(page)
    page.get_by_text("Dataset options").click()
    page.get_by_label("Training images", exact=True).fill("300")
    page.get_by_label("Test images", exact=True).fill("100")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Run name (optional)").fill("e2e-tiny")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("done: test accuracy").first.wait_for(timeout=600_000)
    page.get_by_role("heading", name="Result").wait_for(timeout=120_000)
    _settle(page)
    _shot(page, "train-tiny-done")
    _no_errors(page)
    assert "e2e-tiny" in _active_model(page)  # the new run became the active model
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 3  # result curves, confusion, comparison
    page.close()


@pytest.mark.timeout(int(QUICK_START_TIMEOUT_S) + 900)
def test_quick_start_trains_while_the_app_stays_responsive(server, browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server)
    page.get_by_role("heading", name="nnkit lab", level=1).wait_for(timeout=120_000)
    _settle(page)
    page.get_by_role("button", name="Quick start").click()
    progress = page.locator('[data-testid="stProgress"]').first
    progress.wait_for(timeout=60_000)
    _shot(page, "quick-start-running")

    # A refresh re-attaches to the running job (the browser's owner cookie).
    page.reload()
    page.get_by_role("button", name="Cancel").wait_for(timeout=60_000)

    # Another page opens and works while the job runs; the sidebar shows the job's progress.
    t0 = time.monotonic()
    page.goto(f"{server}/data")
    page.get_by_role("heading", name="Data", level=1).wait_for(timeout=120_000)
    page.get_by_role("heading", name="Class balance").wait_for(timeout=120_000)
    data_seconds = time.monotonic() - t0
    print(f"\nData page opened in {data_seconds:.1f} s while the quick start trained")
    assert page.locator('[data-testid="stSidebar"] [data-testid="stProgress"]').count() >= 1
    _settle(page)
    _shot(page, "data-while-training")

    page.goto(server)
    page.get_by_role("heading", name="nnkit lab", level=1).wait_for(timeout=120_000)
    done = page.get_by_text("done: test accuracy").first
    done.wait_for(timeout=QUICK_START_TIMEOUT_S * 1000)
    print(f"\nQuick start: {done.inner_text()}")  # e.g. "done: test accuracy 95.2% in 34 s"
    _settle(page)
    _shot(page, "quick-start-done")
    _no_errors(page)
    assert "quick-start" in _active_model(page)  # the new model became the active model

    page.goto(f"{server}/train")
    page.get_by_role("heading", name="Result").wait_for(timeout=120_000)
    _settle(page)
    _no_errors(page)
    _shot(page, "train-result")
    context.close()


def test_attack_page_attacks_chosen_images(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # A tiny model of its own, so this test also runs alone (``-k attack``).
    page.goto(f"{server}/train")
    page.get_by_role("heading", name="Train", level=1).wait_for(timeout=120_000)
    _settle(page)
    page.get_by_text("Dataset options").click()
    page.get_by_label("Training images", exact=True).fill("300")
    page.get_by_label("Test images", exact=True).fill("100")
    page.get_by_label("Epochs", exact=True).fill("2")
    page.get_by_label("Run name (optional)").fill("e2e-attack")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("done: test accuracy").first.wait_for(timeout=600_000)
    _settle(page)
    assert "e2e-attack" in _active_model(page)

    page.goto(f"{server}/attack")
    page.get_by_role("heading", name="Attack", level=1).wait_for(timeout=120_000)
    _settle(page)
    form = page.locator('[data-testid="stForm"]').first  # the chosen-images form (first tab)
    form.get_by_role("spinbutton", name="Population").fill("40")
    form.get_by_role("spinbutton", name="Generations").fill("5")
    form.get_by_role("button", name="Attack", exact=True).click()
    page.get_by_role("heading", name="Result").wait_for(timeout=300_000)
    _settle(page)
    _no_errors(page)
    assert page.get_by_text("Image #0").count() == 1
    # The thumbnail strip, then a before/after figure and a probability chart for each of the four images.
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 9
    assert page.get_by_role("button", name="Before/after (PNG)").count() == 1
    _shot(page, "attack-one-pixel")
    page.close()


def test_explain_page_draws_a_saliency_grid(server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    # A tiny model of its own, so this test also runs alone (``-k explain``).
    page.goto(f"{server}/train")
    page.get_by_role("heading", name="Train", level=1).wait_for(timeout=120_000)
    _settle(page)
    page.get_by_text("Dataset options").click()
    page.get_by_label("Training images", exact=True).fill("300")
    page.get_by_label("Test images", exact=True).fill("100")
    page.get_by_label("Epochs", exact=True).fill("1")
    page.get_by_label("Run name (optional)").fill("e2e-explain")
    page.get_by_role("button", name="Train", exact=True).click()
    page.get_by_text("done: test accuracy").first.wait_for(timeout=600_000)
    _settle(page)
    assert "e2e-explain" in _active_model(page)

    page.goto(f"{server}/explain")
    page.get_by_role("heading", name="Explain & Confounding", level=1).wait_for(timeout=120_000)
    _settle(page)
    form = page.locator('[data-testid="stForm"]').first  # the saliency-grid form (first tab)
    form.get_by_role("spinbutton", name="N").fill("4")
    form.get_by_role("button", name="Explain", exact=True).click()
    page.get_by_text("Overlay opacity").wait_for(timeout=300_000)
    _settle(page)
    _no_errors(page)
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    assert chart.locator(".main-svg").count() >= 1
    # Column titles (image, then one per method) and one "true→predicted" title per row, drawn by plotly.
    assert chart.get_by_text("Grad-CAM", exact=True).count() == 1 and chart.get_by_text("Gradient", exact=True).count() == 1
    assert chart.get_by_text("→").count() == 4
    assert page.get_by_role("button", name="Grid (PNG)").count() == 1
    _shot(page, "explain-grid")
    page.close()


def test_compare_page_shows_the_table_of_stored_evaluations(server, browser, monkeypatch):
    """Two tiny runs put into the served store, one with a stored APGD evaluation: the Compare page shows the
    table, the plot and the downloads, and its CSV holds the stored number with the command that made it."""
    import csv

    from attacks.on_run import robust_on_run
    from nnkit.training import TrainConfig, train

    monkeypatch.setenv("NNKIT_HOME", str(_SERVER_HOME[-1]))
    ids = [train(TrainConfig(data="shapes", data_opts={"n_train": 200, "n_test": 60}, model="cnn",
                             model_opts={"widths": [8, 16], "hidden": 16}, epochs=1, max_steps=3, seed=0,
                             device="cpu", name=f"e2e-compare-{k}")).run_id for k in "ab"]
    stored = robust_on_run(ids[0], attack="apgd", eps=[8 / 255], steps=3, n=4, seed=0, device="cpu").evaluation

    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(f"{server}/compare")
    page.get_by_role("heading", name="Compare", level=1).wait_for(timeout=120_000)
    _settle(page)
    _no_errors(page)
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1  # the table (drawn on a canvas)
    assert page.get_by_role("heading", name="Clean against robust accuracy").count() == 1
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 1
    assert page.get_by_text("Missing cells").count() >= 1
    with page.expect_download() as info:
        page.get_by_role("button", name="Table (CSV)").click()
    rows = {r["run_id"]: r for r in csv.DictReader(io.StringIO(Path(info.value.path()).read_text()))}
    assert set(ids) <= set(rows)
    assert float(rows[ids[0]]["robust_accuracy"]) == stored.result["robust_accuracy"]["8/255"]
    assert rows[ids[0]]["robust_accuracy source"] == stored.command
    assert rows[ids[1]]["robust_accuracy source"].startswith("missing: nnkit attack apgd")
    _shot(page, "compare")
    _no_errors(page)
    page.close()
