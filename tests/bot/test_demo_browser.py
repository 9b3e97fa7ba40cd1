"""``driftwatch demo`` in a real browser (Debian's chromium, driven by Playwright): the
channel page shows an incident the scenarios produced, with its chart in the thread; a
click on Resync, confirmed in the dialog, reaches the bot as a signed ``block_actions``,
the message updates in place and the fake Shopify ends at the source of truth's count;
``/drift`` typed in the message box is answered.

Skipped when ``/usr/bin/chromium`` or the ``playwright`` package is missing, except
under ``CI=true`` where that is a failure. Screenshots go to ``$DRIFTWATCH_ARTIFACTS``
(default ``artifacts/``, gitignored).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.cli.demo import DemoWorld, run_demo

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("DRIFTWATCH_ARTIFACTS") or ROOT / "artifacts")
SKU = "CAP-NAVY"


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return CHROMIUM


@pytest.fixture
async def browser_page(chromium: Path) -> AsyncIterator[Any]:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(chromium), args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.errors = errors
            refused: list[str] = []  # e.g. a /favicon.ico 404 on every load
            page.on(
                "response",
                lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None,
            )
            page.refused = refused
            yield page
            await context.close()
        finally:
            await browser.close()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[DemoWorld]:
    stop = asyncio.Event()
    started: asyncio.Future[DemoWorld] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(
        run_demo(
            tmp_path / "demo.db",
            scenario="manual-storefront-override",
            stop=stop,
            ready=lambda demo, _url: started.set_result(demo),
            out=lambda _line: None,
        )
    )
    try:
        async with asyncio.timeout(90):
            await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # the demo ended before it was ready: show why
        yield started.result()
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0


async def test_resync_an_incident_and_ask_drift_in_the_browser(
    demo: DemoWorld, browser_page: Any
) -> None:
    from playwright.async_api import expect

    page, world = browser_page, demo.world
    gid, warehouse = world.locations["east"]
    alert = next(m for m in world.slack.messages(world.alerts_channel) if SKU in (m.text or ""))
    await page.goto(f"{world.slack.base_url}/channel/{world.alerts_channel}?user=U0OPS001")
    message = page.locator(f'.message[data-ts="{alert.ts}"]').first  # the thread repeats it
    await expect(message).to_contain_text(SKU)
    await expect(message).to_contain_text("Likely a manual change in Shopify")

    await message.get_by_text(re.compile(r"\d+ repl(y|ies)")).click()
    chart = page.locator("#thread img")
    await expect(chart.first).to_be_visible()
    assert await chart.first.evaluate("img => img.naturalWidth") > 200, "the chart loaded"
    await page.screenshot(path=str(ARTIFACTS / "demo_incident.png"))

    truth = world.wms.level(SKU, warehouse).pickable
    assert world.shopify.quantities(SKU, gid)["available"] != truth
    await message.get_by_role("button", name="Resync").click()
    dialog = page.get_by_role("alertdialog")
    await expect(dialog).to_contain_text("Resync from the source of truth?")
    await dialog.get_by_role("button", name="Resync").click()
    await expect(message).to_contain_text("(edited)", timeout=30_000)
    await expect(message.get_by_role("button", name="Resync")).to_have_count(0)
    assert world.shopify.quantities(SKU, gid)["available"] == truth

    composer = page.get_by_placeholder("Message #ops-inventory")
    await composer.fill(f"/drift {SKU}")
    await composer.press("Enter")
    answer = page.locator(".message.ephemeral").filter(has_text=SKU)
    await expect(answer.last).to_be_visible(timeout=30_000)
    await expect(answer.last).to_contain_text("source of truth")
    await page.screenshot(path=str(ARTIFACTS / "demo_resynced.png"), full_page=True)
    assert page.errors == []
    assert page.refused == []
