"""What a person sees, checked in a real browser: the search report, the MLflow UI and optuna-dashboard of a real
finished search (the session's ``e2e_search``), opened in headless Chromium from Debian's packages through Selenium.

Each test asserts that the page logged no console errors and that its plots or tables are in the DOM with data, and
saves a screenshot under ``test-artifacts/browser/`` (or ``$ATTNAS_TEST_ARTIFACTS/browser/``) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

from dashboards.report import REPORT_HTML
from dashboards.study import study_command
from dashboards.ui import experiment_url, ui_command

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ATTNAS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "browser"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 180  # longest wait for a server to start or a page to render (a generous bound, not a timing assertion)
# Console errors that are MLflow's own, not ours: its UI asks for the signed-in user, which a server without
# authentication answers with 404.
MLFLOW_OWN_ERRORS = ("/ajax-api/2.0/mlflow/users/current",)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail("headless Chromium and its driver are needed: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _client(folder: Path) -> tuple[mlflow.MlflowClient, str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("attnas")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string="tags.`attnas.role` = 'search'")
    return client, experiment.experiment_id, parent


def _wait_for(driver, script: str, *, what: str):
    """Poll ``script`` (JavaScript returning a value) until it is truthy; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if value := driver.execute_script(script):
            return value
        time.sleep(0.25)
    pytest.fail(f"the page never showed {what} ({driver.current_url})")


def _console_errors(driver, *, ignore: tuple[str, ...] = ()) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(pattern in entry["message"] for pattern in ignore)]


def _screenshot(driver, name: str, *, height: int | None = None) -> Path:
    if height is not None:  # the whole page, not just the first screen
        driver.set_window_size(1400, min(height, 8000))
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(command: list[str], *, url: str, cwd: Path) -> subprocess.Popen:
    """Start a local server (its own process group) and wait until ``url`` answers."""
    executable = Path(sys.executable).parent / command[0]
    process = subprocess.Popen([str(executable) if executable.exists() else command[0], *command[1:]], cwd=cwd,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"{command} exited with {process.returncode}")
            time.sleep(0.5)
    _stop(process)
    pytest.fail(f"{command} did not answer on {url}")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)  # the group this test started (mlflow ui spawns workers)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_the_report_opens_offline_with_every_plot(browser, e2e_search) -> None:
    client, experiment_id, parent = _client(e2e_search.folder)
    report = Path(client.download_artifacts(parent.info.run_id, REPORT_HTML, str(e2e_search.folder)))
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(report.as_uri())
    counts = _wait_for(browser, """
        const n = sel => document.querySelectorAll(sel).length;
        const c = {front: n('#plot-front .scatterlayer .point'), heat: n('#plot-placement .heatmaplayer .hm'),
                   bars: n('#plot-importance .barlayer .point'), hv: n('#plot-hypervolume .scatterlayer .point'),
                   confirmed: n('#confirmed tbody tr')};
        return Object.values(c).every(v => v > 0) ? c : null;""", what="every plot with data")
    runs = client.search_runs([experiment_id], filter_string="tags.`attnas.role` = 'trial'")
    plotted = [r for r in runs if r.data.tags.get("attnas.outcome") in ("completed", "early_stopped")]
    assert counts["front"] >= len(plotted)  # every completed and early-stopped trial is a point (plus confirmed)
    assert counts["heat"] == 2  # accuracy and latency heatmaps
    confirmed = client.download_artifacts(parent.info.run_id, "confirmation/confirmed.csv", str(e2e_search.folder))
    assert counts["confirmed"] == len(Path(confirmed).read_text().splitlines()) - 1
    assert parent.data.tags["attnas.verdict"] in browser.find_element("tag name", "body").text
    # self-contained: nothing was fetched from a network (plotly.js is inlined)
    fetched = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in fetched if url.startswith(("http:", "https:"))]
    # a click on a point opens that trial's MLflow run
    browser.execute_script("window.opened = []; window.open = url => { window.opened.push(url); return null; };")
    from selenium.webdriver.common.action_chains import ActionChains

    point = browser.find_element("css selector", "#plot-front .scatterlayer .trace:last-child .point")
    ActionChains(browser).move_to_element(point).click().perform()
    opened = _wait_for(browser, "return window.opened.length ? window.opened : null", what="a run opened on click")
    assert opened[0].startswith("http://127.0.0.1:5000/#/experiments/") and "/runs/" in opened[0]
    assert opened[0].rsplit("/", 1)[1] in {r.info.run_id for r in runs}
    assert _console_errors(browser) == []
    height = browser.execute_script("return document.body.scrollHeight")
    assert _screenshot(browser, "report.png", height=height).stat().st_size > 0


def test_mlflow_opens_on_the_training_runs_with_our_columns(browser, e2e_search, tmp_path: Path) -> None:
    client, experiment_id, parent = _client(e2e_search.folder)
    port = _free_port()
    command = ui_command(tracking_uri=f"sqlite:///{e2e_search.folder / 'mlflow.db'}", port=port)
    server = _serve(command, url=f"http://127.0.0.1:{port}/health", cwd=e2e_search.folder)
    try:
        browser.set_window_size(2800, 1000)  # wide enough that the grid renders every column we ask for
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(experiment_url(tracking_uri=f"http://127.0.0.1:{port}", experiment_id=experiment_id))
        headers = _wait_for(browser, """
            const h = Array.from(document.querySelectorAll('[role=columnheader]')).map(e => e.innerText.trim());
            return h.includes('val_acc') && h.includes('pareto') ? h : null;""", what="the runs table with our columns")
        for column in ("val_acc", "latency_norm_ms", "latency_ms", "params_m", "attnas.outcome", "pareto"):
            assert column in headers, (column, headers)
        # the search's run, unfolded on the + beside its name, lists its trial runs
        _wait_for(browser, f"return document.body.innerText.includes({e2e_search.name!r})", what="the search's run")
        browser.find_element("css selector", "[role=row] button[data-component-id*='runnamecellrenderer']").click()
        trials = client.search_runs([experiment_id], filter_string="tags.`attnas.role` = 'trial'")
        names = [r.info.run_name for r in trials]
        _wait_for(browser, f"return {names!r}.every(n => document.body.innerText.includes(n))",
                  what="every trial run under the search")
        assert _console_errors(browser, ignore=MLFLOW_OWN_ERRORS) == []
        _screenshot(browser, "mlflow-runs.png")
    finally:
        _stop(server)


def test_optuna_dashboard_shows_the_study(browser, e2e_search) -> None:
    port = _free_port()
    storage = f"sqlite:///{e2e_search.folder / 'optuna.db'}"
    server = _serve(study_command(storage=storage, port=port), url=f"http://127.0.0.1:{port}/api/studies",
                    cwd=e2e_search.folder)
    try:
        browser.set_window_size(1400, 1000)
        browser.get_log("browser")  # drop what earlier pages logged
        browser.get(f"http://127.0.0.1:{port}/dashboard")
        _wait_for(browser, f"return document.body.innerText.includes({e2e_search.name!r})", what="the study's name")
        browser.find_element("partial link text", e2e_search.name).click()
        _wait_for(browser, "return document.querySelectorAll('.js-plotly-plot .scatterlayer .point').length > 0",
                  what="the study's plots with trials")
        _wait_for(browser, "return document.body.innerText.includes('latency_norm_ms')",
                  what="the objectives by name (search.study.searcher.open_study names them)")
        assert _console_errors(browser) == []
        _screenshot(browser, "optuna-dashboard.png")
    finally:
        _stop(server)
