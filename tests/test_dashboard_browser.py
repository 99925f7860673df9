"""The risk dashboard in a real headless Chromium with the network cut off (Debian's chromium + chromedriver).

Opens ``dashboard.html`` from disk (file://) as a risk officer would: it must load without a console error,
show the month's OD outstanding, and re-filter its table when a branch is chosen. Skipped, with the reason,
where ``/usr/bin/chromium`` or ``/usr/bin/chromedriver`` is not installed (``make os-packages`` installs them).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from odwh import publish
from odwh.publish.dashboard import render_dashboard
from support.fonts import without_khmer_fonts
from support.marts import MONTH_END, ScriptedMarts, month_ends

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
    " `make os-packages` installs them)",
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


MONTH_TICK = re.compile(r"^(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4}$")
MONTHS = [f"{end:%b %Y}" for end in month_ends(MONTH_END, 13)]  # Jan 2025 ... Jan 2026


def tick_labels(driver: Any, chart: str) -> list[str]:
    """The x-axis tick labels as drawn: the text elements of the chart's SVG."""
    return [t.text for t in driver.find_elements("css selector", f"#{chart} .xaxislayer-above .xtick text")]


def chart_table(driver: Any, chart: str) -> list[list[str]]:
    """The rows of the chart's table of numbers (read from the DOM, shown or folded)."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map((tr) => [...tr.cells].map((cell) => cell.textContent));",
        f"#{chart}-data",
    )


def chart_traces(driver: Any, chart: str) -> list[dict[str, Any]]:
    """What plotly drew: each trace's x, y, text and customdata."""
    return driver.execute_script(  # type: ignore[no-any-return]
        "return document.getElementById(arguments[0]).data.map((t) => ({x: t.x, y: t.y, text: t.text || null,"
        " customdata: t.customdata || null}));",
        chart,
    )


def money(value: float) -> str:
    return f"{value:,.2f}"


def percent(value: float | str, places: int = 2) -> str:
    return f"{float(value) * 100:.{places}f}%"


def test_dashboard_monthly_axes_and_chart_tables(dashboard: Path, browser: object) -> None:
    """Month ticks on the monthly charts, and under every chart a table with the numbers the chart draws."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver: WebDriver = browser  # type: ignore[assignment]
    driver.get(dashboard.as_uri())
    wait = WebDriverWait(driver, 30)
    for chart in ("chart-trend", "chart-par-trend"):
        wait.until(lambda d, c=chart: tick_labels(d, c))
        ticks = tick_labels(driver, chart)
        assert all(MONTH_TICK.match(t) for t in ticks), (chart, ticks)  # "Jan 2026", never "Jan 25" or a day
        assert ticks[-1] == "Jan 2026" and set(ticks) <= set(MONTHS), (chart, ticks)
        assert [row[0] for row in chart_table(driver, chart)] == MONTHS

    bars, share, cap = chart_traces(driver, "chart-trend")
    assert bars["x"] == MONTHS
    expected = [
        [m, money(o), percent(s), percent(c)]
        for m, o, s, c in zip(MONTHS, bars["y"], share["y"], cap["y"], strict=True)
    ]
    assert chart_table(driver, "chart-trend") == expected
    assert expected[-1] == ["Jan 2026", "96,200.00", "8.78%", "10.00%"]

    par30, par90, coverage = chart_traces(driver, "chart-par-trend")
    assert chart_table(driver, "chart-par-trend") == [
        [m, percent(a), percent(b), percent(c, 0)]
        for m, a, b, c in zip(par30["x"], par30["y"], par90["y"], coverage["y"], strict=True)
    ]
    (heat,) = chart_traces(driver, "chart-roll-rates")
    assert chart_table(driver, "chart-roll-rates") == [
        [f, *t] for f, t in zip(heat["y"], heat["text"], strict=True)
    ]

    def by_category() -> dict[str, list[list[str]]]:
        """Each category chart's table, and the same rows rebuilt from what the chart draws."""
        out = {}
        for chart, horizontal in (
            ("chart-grades", False),
            ("chart-branches", True),
            ("chart-currencies", False),
        ):
            (trace,) = chart_traces(driver, chart)
            names, values = (trace["y"], trace["x"]) if horizontal else (trace["x"], trace["y"])
            drawn = [[n, money(v)] for n, v in zip(names, values, strict=True)]
            table = chart_table(driver, chart)
            assert [row[:2] for row in table] == drawn, chart
            if trace["customdata"]:
                assert [row[2] for row in table] == [f"{n:,}" for n in trace["customdata"]], chart
            out[chart] = table
        return out

    tables = by_category()
    assert ["Loss", "79,000.00", "1"] in tables["chart-grades"]
    assert tables["chart-currencies"] == [
        ["KHR", "3,000.00", "1"],
        ["THB", "7,500.00", "1"],
        ["USD", "85,700.00", "4"],
    ]

    Select(driver.find_element(By.ID, "filter-branch")).select_by_value(
        "B02"
    )  # the tables follow the filters
    wait.until(lambda d: ["Normal", "0.00", "1"] in chart_table(d, "chart-grades"))
    tables = by_category()
    assert tables["chart-branches"] == [["B02 Battambang", "79,000.00", "2"]]

    toggle = driver.find_element(By.CSS_SELECTOR, "#chart-grades + details summary")
    table = driver.find_element(By.ID, "chart-grades-data")
    assert not table.is_displayed()
    toggle.click()
    caption = table.find_element(By.TAG_NAME, "caption").text  # Khmer, then English
    assert (
        table.is_displayed()
        and " / Outstanding by NBC grade (USD)" in caption
        and re.search("[\u1780-\u17ff]", caption)
    )
    assert driver.find_element(By.ID, "chart-grades").get_attribute("aria-describedby") == "chart-grades-data"
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
