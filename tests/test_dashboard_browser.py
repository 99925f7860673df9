"""The risk dashboard in a real headless Chromium with the network cut off (Debian's chromium + chromedriver).

Opens ``dashboard.html`` from disk (file://) as a risk officer would: it must load without a console error,
show the month's OD outstanding, and re-filter its table when a branch is chosen. Skipped, with the reason,
where ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is not installed (``make browser`` installs them).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from odwh import publish
from odwh.publish.dashboard import render_dashboard
from support.fonts import without_khmer_fonts
from support.marts import MONTH_END, ScriptedMarts

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OFFLINE = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--proxy-server=127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--window-size=1400,1900",
]

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs /usr/bin/chromium and /usr/bin/chromedriver (Debian packages chromium, chromium-driver;"
    " `make browser` installs them)",
)


@pytest.fixture
def dashboard(fresh_db: str, tmp_path: Path) -> Path:
    ScriptedMarts(fresh_db).create()
    with psycopg.connect(fresh_db) as conn:
        data = publish.load_month(conn, MONTH_END, institution="Test MFI Plc.")
    return render_dashboard(data, tmp_path)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never download a browser or driver
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in [*OFFLINE, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_dashboard_offline_kpis_and_branch_filter(dashboard: Path, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver: WebDriver = browser  # type: ignore[assignment]
    driver.get(dashboard.as_uri())
    wait = WebDriverWait(driver, 30)
    wait.until(lambda d: d.find_element(By.ID, "kpi-od-outstanding").text != "")

    assert driver.find_element(By.ID, "kpi-od-outstanding").text == "96,200.00"
    assert driver.find_element(By.ID, "kpi-od-share").text == "8.78%"
    assert driver.find_element(By.ID, "kpi-excess").text == "1"
    assert driver.find_element(By.ID, "kpi-candidates").text == "1"
    for chart in ("chart-grades", "chart-branches", "chart-currencies", "chart-trend"):
        assert driver.find_elements(By.CSS_SELECTOR, f"#{chart} .main-svg"), f"{chart} not drawn"
    rows = driver.find_elements(By.CSS_SELECTOR, "#portfolio-table tbody tr")
    assert len(rows) == 6  # branch x currency x grade groups of the six scripted accounts
    driver.save_screenshot(str(tmp_path / "dashboard.png"))

    Select(driver.find_element(By.ID, "filter-branch")).select_by_value("B02")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#portfolio-table tbody tr")) == 2)
    assert driver.find_element(By.ID, "kpi-od-outstanding").text == "79,000.00"
    assert driver.find_element(By.ID, "kpi-npl").text == "100.00%"
    assert driver.find_element(By.ID, "table-count").text == "2 rows"

    Select(driver.find_element(By.ID, "filter-branch")).select_by_value("")
    Select(driver.find_element(By.ID, "filter-currency")).select_by_value("THB")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#portfolio-table tbody tr")) == 1)
    assert driver.find_element(By.ID, "kpi-od-outstanding").text == "7,500.00"
    driver.find_element(By.ID, "filter-reset").click()
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#portfolio-table tbody tr")) == 6)
    driver.save_screenshot(str(tmp_path / "dashboard-reset.png"))
    assert (tmp_path / "dashboard.png").read_bytes().startswith(b"\x89PNG")

    severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]  # type: ignore[attr-defined]
    assert severe == []


@pytest.fixture
def no_khmer_fonts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chromium (started after this fixture) sees no system Khmer font."""
    monkeypatch.setenv("FONTCONFIG_FILE", str(without_khmer_fonts(tmp_path)))


def test_dashboard_prints_khmer_with_its_own_font(
    no_khmer_fonts: None, dashboard: Path, browser: object
) -> None:
    """The branch table's Khmer province names make Chromium load the inline Noto Sans Khmer (a web font is
    loaded only when text needs it); no system Khmer font is there to fall back on."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import WebDriverWait

    driver: WebDriver = browser  # type: ignore[assignment]
    driver.get(dashboard.as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#portfolio-table tbody tr"))
    assert "Battambang បាត់ដំបង" in driver.find_element(By.ID, "portfolio-table").text
    faces = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "document.fonts.ready.then(() => done([...document.fonts].map((f) => [f.family, f.status])));"
    )
    assert ["Noto Sans Khmer", "loaded"] in [[family.strip('"'), status] for family, status in faces], faces
