"""The dashboard in a real headless browser (Debian's chromium through Playwright) against a real
``fleetmatch up``: one stack and one browser for the module. The page loads and shows the demo
fleet's live servers; allocating a server through the allocation API changes the page without a
reload (the SSE push); the queue panel shows the matchmaker's real queues; and a screenshot keeps
the page from regressing into an empty one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.dashboard.pixels import colourful, decode, palette
from tests.dashboard.stack import Stack, chromium, chromium_path, running_stack

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(150),
    pytest.mark.skipif(chromium_path() is None, reason="no chromium: `make chromium` (make test does) installs it"),
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("dashboard")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def page(stack: Stack, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()  # the page's CSP forbids eval: wait_for_function gets functions, not expressions
    page.set_default_timeout(15_000)
    page.goto(stack.login_url)
    yield page
    context.close()


def allocated_count(page: Page) -> int:
    return int(page.locator('[data-fleet="demo"] [data-count="allocated"]').inner_text())


def test_the_page_loads_and_shows_the_demo_fleets_live_servers(stack: Stack, page: Page) -> None:
    assert page.url == stack.info["dashboard_url"]  # the token was exchanged for a cookie and left the address
    page.wait_for_selector('#live[data-state="live"]')
    page.wait_for_selector('[data-fleet="demo"]')
    listed = stack.cli("gs", "list", "--fleet", "demo", "-o", "name")
    names = sorted(line.removeprefix("gameserver/") for line in listed.stdout.split())
    assert len(names) >= 4, listed.stderr
    page.wait_for_function("n => document.querySelectorAll('tr[data-server]').length >= n", arg=len(names))
    shown = sorted(page.locator("tr[data-server]").evaluate_all("rows => rows.map(r => r.dataset.server)"))
    assert set(names) <= set(shown)
    assert int(page.locator('[data-fleet="demo"] [data-count="desired"]').inner_text()) >= 4
    assert page.locator('#nodes tr[data-node="local"]').inner_text().split()[:2] == ["local", "Ready"]


def test_allocating_a_server_updates_the_page_without_a_reload(stack: Stack, page: Page) -> None:
    page.wait_for_selector('[data-fleet="demo"]')
    page.evaluate("window.__sameDocument = true")  # gone if the page reloaded
    before = allocated_count(page)
    allocation = stack.allocate()
    name = allocation["status"]["gameServerName"]
    assert allocation["status"]["state"] == "Allocated", allocation
    page.wait_for_function(
        '([n, name]) => Number(document.querySelector(\'[data-fleet="demo"] [data-count="allocated"]\').textContent)'
        " === n && document.querySelector(`tr[data-server=\"${name}\"]`)?.dataset.state === 'Allocated'",
        arg=[before + 1, name],
        timeout=10_000,
    )
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator('[data-tile="allocated"] .value').inner_text() == str(before + 1)


def test_the_queue_panel_shows_the_matchmakers_queues(stack: Stack, page: Page) -> None:
    opened = stack.cli("ticket", "create", "-q", "4v4", "-p", "dash-solo", "--skill", "1500", "--latency", "local=25")
    assert opened.returncode == 0, opened.stderr
    page.wait_for_function(
        "() => document.querySelector('tr[data-queue=\"4v4\"] [data-col=\"players\"]')?.textContent === '1'",
        timeout=10_000,
    )
    assert page.locator("tr[data-queue]").evaluate_all("rows => rows.map(r => r.dataset.queue)") == ["4v4", "duel"]
    assert page.locator('tr[data-queue="4v4"]').inner_text().split()[-2:] == ["local", "1"]  # players by best region
    assert not page.locator("#errors").is_visible()


def test_the_screenshot_is_a_full_page_not_an_empty_one(page: Page, tmp_path: Path) -> None:
    page.wait_for_selector("tr[data-server]")
    page.wait_for_function("() => document.querySelectorAll('#fleets svg path').length >= 3")  # the fleet's three lines
    for element in ("#tiles .tile", '[data-fleet="demo"] svg', "#alloc-chart", "#queues tbody tr", "#servers tbody tr"):
        assert page.locator(element).first.is_visible(), element
    png = page.screenshot()
    (tmp_path / "dashboard.png").write_bytes(png)  # kept by pytest's tmp_path, to look at when this fails
    width, height, pixels = decode(png)
    assert (width, height) == (1280, 900)
    colours = palette(pixels)
    background = colours.most_common(1)[0][1] / len(pixels)
    assert background < 0.6, f"{background:.0%} of the page is one colour"
    assert len(colours) >= 40, f"only {len(colours)} distinct colours"
    assert colourful(pixels) > 0.003, "no badges, bars or chart lines drawn"
