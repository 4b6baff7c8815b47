"""The dashboard in a real headless browser (Debian's chromium through its chromedriver),
against a 3-node cluster of real ``hearsay serve`` processes (issue 15 item 4).

The browser is a hard requirement, as redis-server is: ``make .make-stamp-test`` installs it;
without it this test fails (it never skips).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support.nodes import Cluster, NodeProcess, poll_until

pytestmark = pytest.mark.integration

DEADLINE_S = 45.0  # generous: reached only when something is wrong (or a crushed machine)
PAGE_LOAD_TIMEOUT_S = 15
KEYS = 30
SCREEN_SIZE = (1280, 900)
SCREENSHOT_BYTES_MIN = 20_000
SCREENSHOT_COLOURS_MIN = 16


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    assert chromium and chromedriver, (
        "chromium and chromium-driver are required (make .make-stamp-test installs them)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={SCREEN_SIZE[0]},{SCREEN_SIZE[1]}",
    ):
        options.add_argument(flag)
    # Chromium makes its singleton directory (a socket in it) under TMPDIR and leaves it
    # behind: give it a directory of its own, removed after. Short, as a socket path must be.
    scratch = tempfile.mkdtemp(prefix="hearsay-chromium-")
    try:
        service = Service(executable_path=chromedriver, env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(service=service, options=options)
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT_S)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def members(driver: webdriver.Chrome) -> dict[str, dict[str, Any]]:
    """The members table as the page shows it: name -> state, link status, href, cells."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """return [...document.querySelectorAll('#members tbody tr')].map((row) => ({
             name: row.dataset.member, state: row.dataset.state,
             link: row.querySelector('[data-link]')?.dataset.link,
             href: row.querySelector('a')?.getAttribute('href') ?? null,
             cells: [...row.cells].map((cell) => cell.textContent)}))"""
    )
    return {row["name"]: row for row in rows}


def chart_points(driver: webdriver.Chrome) -> list[int]:
    points: list[str | None] = driver.execute_script(
        "return [...document.querySelectorAll('#charts svg')].map((svg) => svg.dataset.points)"
    )
    return [int(p or 0) for p in points]


def dashboard(node: NodeProcess) -> str:
    return f"http://{node.http}/dashboard"


def test_dashboard_in_a_browser(tmp_path: Path, browser: webdriver.Chrome) -> None:
    cluster = Cluster(tmp_path / "nodes")
    try:
        a = cluster.start("a")
        b = cluster.start("b", "--join", a.gossip)
        c = cluster.start("c", "--join", a.gossip)
        client = a.client()
        for i in range(KEYS):
            client.pfadd(f"visitors:{i}", "alice", "bob")
            client.pfcount(f"visitors:{i}")

        browser.get(dashboard(a))

        def all_alive_and_linked() -> bool:
            shown = members(browser)
            return (
                len(shown) == 3
                and all(m["state"] == "alive" and m["link"] == "up" for m in shown.values())
                and shown[a.name]["cells"][3] == str(KEYS)
            )

        poll_until(all_alive_and_linked, DEADLINE_S, 0.2, "3 alive members, every link up")
        poll_until(lambda: min(chart_points(browser)) >= 2, DEADLINE_S, 0.2, "chart data")
        poll_until(
            lambda: (
                browser.execute_script("return document.getElementById('chart-keys').dataset.last")
                == str(KEYS)
            ),
            DEADLINE_S,
            0.2,
            "the keys chart reaching the keys written",
        )
        assert browser.find_element(By.ID, "node").text == a.name
        shown = members(browser)
        assert shown[b.name]["href"] == dashboard(b)
        assert shown[c.name]["href"] == dashboard(c)
        assert shown[a.name]["href"] is None  # itself: no link
        # Each member's figures come from that member: b and c hold the keys too, by gossip.
        poll_until(
            lambda: all(m["cells"][3] == str(KEYS) for m in members(browser).values()),
            DEADLINE_S,
            0.2,
            "every member's key count",
        )

        screenshot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size >= SCREENSHOT_BYTES_MIN
        with Image.open(screenshot) as image:
            assert image.size == SCREEN_SIZE or image.size[0] >= SCREEN_SIZE[0] // 2
            colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is not None and len(colours) >= SCREENSHOT_COLOURS_MIN, colours
        alive_green = (0x2E, 0x7D, 0x32)
        assert any(rgb == alive_green for _, rgb in colours), "no alive badge drawn"

        # Follow the link to b's dashboard: b's page, b's view of the same three members.
        browser.find_element(By.LINK_TEXT, b.name).click()
        poll_until(lambda: browser.find_element(By.ID, "node").text == b.name, DEADLINE_S, 0.2)
        poll_until(lambda: len(members(browser)) == 3, DEADLINE_S, 0.2, "b's members")
        assert members(browser)[a.name]["href"] == dashboard(a)

        # A node dies: a's page shows it failing and its dashboard down, and keeps refreshing.
        browser.get(dashboard(a))
        poll_until(lambda: len(members(browser)) == 3, DEADLINE_S, 0.2, "a's members again")
        c.kill()

        def c_down() -> bool:
            row = members(browser).get(c.name)
            return (
                row is not None
                and row["state"] in ("suspect", "failed")
                and row["link"] == ("down")
            )

        poll_until(c_down, DEADLINE_S, 0.2, "c shown suspect or failed, its dashboard down")
        poll_until(
            lambda: (
                members(browser)[b.name]["state"] == "alive"
                and members(browser)[b.name]["link"] == "up"
            ),
            DEADLINE_S,
            0.2,
            "b still alive and up",
        )
        failed_screenshot = tmp_path / "dashboard-failed.png"
        assert browser.save_screenshot(str(failed_screenshot))
    finally:
        cluster.close()
