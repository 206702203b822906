"""The operator's status page: what it renders, and the real page in a real headless browser."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.daemon.page import render_page
from tests.daemon.support import REPO, Daemon, drop, wait_for

NOW = datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# What the probe of this machine kind needs: without the background-networking flags Chromium
# tries Google's hosts at every start, which a closed network refuses.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def sample() -> dict:
    return {
        "daemon": "host:123",
        "dropoff": "/srv/dropoff",
        "database": {"up": True},
        "in_flight": [
            {
                "id": 7,
                "file_name": "big.csv",
                "table_name": "big",
                "rows_done": 5000,
                "progress_percent": 42.0,
            }
        ],
        "waiting_for_stability": [
            {"file": "reference_data_table/fullload/new.csv", "checks_done": 2, "checks_needed": 6}
        ],
        "tables": [
            {
                "table": "countries",
                "tracking_id": 5,
                "file_name": "countries.csv",
                "load_type": "fullload",
                "rows_loaded": 250,
                "finished_at": "2024-01-31T11:55:00Z",
                "finished_at_epoch": NOW.timestamp() - 300,
            },
            {
                "table": "rates",
                "tracking_id": 2,
                "file_name": "rates.csv",
                "load_type": "append",
                "rows_loaded": 9,
                "finished_at": "2024-01-29T11:00:00Z",
                "finished_at_epoch": NOW.timestamp() - 49 * 3600,
            },
        ],
        "last_errors": [
            {
                "id": 6,
                "file_name": "<script>alert(1)</script>.csv",
                "table_name": "x",
                "status": "error",
                "error_stage": "stage",
                "error_message": "line 3 has 1 field, expected 2",
                "processed_at": "2024-01-31T11:58:00Z",
                "retry_command": "refdata-monitor retry 6",
            }
        ],
        "last_results": [],
        "loads_per_hour": [
            {
                "hour": f"2024-01-31T{h:02d}:00:00Z",
                "loaded": h % 3,
                "duplicate": 0,
                "error": int(h == 11),
                "cancelled": 0,
            }
            for h in range(24)
        ],
    }


class TestRender:
    def test_every_section_shows_its_facts(self):
        """In flight with progress, waiting with checks, tables with age and rows, errors with retry."""
        html = render_page(sample(), now=NOW)
        assert "big.csv" in html and 'aria-valuenow="42"' in html
        assert "reference_data_table/fullload/new.csv" in html and "2 of 6" in html
        assert "countries" in html and "5 min ago" in html and ">250<" in html
        assert "line 3 has 1 field, expected 2" in html and "<code>refdata-monitor retry 6</code>" in html
        assert html.count("<rect") >= 16 and "<svg" in html

    def test_a_stale_table_is_marked(self):
        """A table last loaded more than 25 h ago is shown in the warning colour."""
        html = render_page(sample(), now=NOW)
        assert re.search(r'<td class="warn">2 d 1 h ago', html)

    def test_values_from_outside_are_escaped(self):
        """A file name holding markup is shown as text, never interpreted."""
        html = render_page(sample(), now=NOW)
        assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;.csv" in html

    def test_the_page_refreshes_itself_fits_a_phone_and_loads_nothing(self):
        """Meta refresh and viewport are set; no script, no link, no URL to another host."""
        html = render_page(sample(), now=NOW)
        assert '<meta http-equiv="refresh" content="10">' in html
        assert 'name="viewport"' in html
        assert "<script" not in html.replace("&lt;script", "") and "<link" not in html
        assert not re.search(r"(src|href)=\"?(https?:)?//", html)

    def test_an_unreachable_database_is_said_first(self):
        """With the database down the header says so, with the reason."""
        html = render_page({"database": {"up": False, "error": "connection refused"}}, now=NOW)
        assert "database unavailable: connection refused" in html


def chrome_or_skip(user_data_dir: Path):
    """A Selenium-driven headless Chromium; skips, saying what is missing, when there is none."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements-dev.txt)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip(
            "chromium and chromium-driver are not installed (bash scripts/bootstrap.sh system-packages)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "--window-size=390,900"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.mark.daemon
class TestInABrowser:
    def test_the_page_shows_a_loaded_and_a_failed_file_on_a_phone_sized_screen(self, tmp_path):
        """Chromium loads / of a running daemon: the loaded file and the refused one with its retry command,
        no horizontal scrolling at a phone's width."""
        from selenium.webdriver.common.by import By

        d = Daemon(tmp_path, f"sqlite:///{tmp_path / 'data' / 'refdata.db'}").start()
        driver = None
        try:
            d.wait_healthy()
            drop(d.folder() / "countries.csv", "code,name\nDE,Germany\nFR,France\nIT,Italy\n")
            drop(d.folder("noref", "append") / "fx_rates.csv", "currency,rate\nUSD,1.08\nGBP\n")
            wait_for(
                lambda: '"file rejected"' in d.log() and '"event": "loaded"' in d.log(),
                60,
                what="one loaded and one refused file",
            )
            driver = chrome_or_skip(tmp_path / "chromium-profile")
            driver.set_page_load_timeout(30)
            driver.get(f"http://127.0.0.1:{d.port}/")
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "countries.csv" in body and "countries" in body
            assert "fx_rates.csv" in body and "line 3" in body
            retry = driver.find_element(By.CSS_SELECTOR, "#errors code").text
            assert re.fullmatch(r"refdata-monitor retry \d+", retry)
            assert driver.find_element(By.CSS_SELECTOR, "#chart svg").is_displayed()
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
            screenshot = os.environ.get("REFDATA_SCREENSHOT")
            if screenshot:  # docs/status-page.png is made this way: REFDATA_SCREENSHOT=docs/status-page.png
                driver.set_window_size(1100, 1000)
                driver.get(f"http://127.0.0.1:{d.port}/")
                height = driver.execute_script("return document.documentElement.scrollHeight")
                driver.set_window_size(1100, min(int(height) + 140, 2400))
                driver.get(f"http://127.0.0.1:{d.port}/")
                driver.save_screenshot(str(REPO / screenshot))
        finally:
            if driver is not None:
                driver.quit()
            d.terminate()
