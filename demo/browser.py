"""Driving the wearer's page in headless Chromium (Debian's package) with synthetic
``devicemotion`` events — what the browser tests and ``python -m demo.measure`` share.

A recording is replayed at the page's sampling period: an event on each sample's time and
``BETWEEN`` interpolated events in between (about 63 Hz, as a phone sends), each with its time
stamp set, so the page's resampler gives back the recording sample for sample.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BETWEEN = 6
DESKTOP, PHONE = {"width": 1280, "height": 800}, {"width": 360, "height": 780}  # viewports
CHROMIUM_NAMES = ("chromium", "chromium-browser")

REPLAY = """async ({rows, between}) => {
  const demo = window.demo;
  const period = 1000 / demo.rateHz;
  window.__clock = (window.__clock || 1000) + 10 * period;  // each replay later than the last
  const t0 = window.__clock;
  const send = (t, v) => {
    const event = new DeviceMotionEvent("devicemotion", {
      accelerationIncludingGravity: {x: v[0], y: v[1], z: v[2]}, interval: period / (between + 1)});
    Object.defineProperty(event, "timeStamp", {value: t});
    window.dispatchEvent(event);
  };
  rows.forEach((v, n) => {
    send(t0 + n * period, v);
    if (n + 1 < rows.length) {
      for (let j = 1; j <= between; j += 1) {
        const w = j / (between + 1);
        send(t0 + (n + w) * period, v.map((a, i) => a + w * (rows[n + 1][i] - a)));
      }
    }
  });
  window.__clock = t0 + rows.length * period;
  await demo.queue;
}"""


def chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def why_no_browser(dist: Path) -> str | None:
    """One line saying what is missing for a browser run, or None when nothing is."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: make install (the dev extra) installs it"
    if chromium() is None:
        return "Chromium is missing: make browser installs Debian's chromium (as root)"
    if not (dist / "ort.wasm.min.mjs").is_file():
        return f"onnxruntime-web is missing at {dist}: make browser installs it from the npm registry"
    return None


@contextlib.contextmanager
def served(site: Path) -> Iterator[str]:
    """The built ``site`` on 127.0.0.1 (a free port) for the duration: its base URL."""
    from demo.serve import serve_in_thread

    server, thread = serve_in_thread(site)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextlib.contextmanager
def browser_page(base_url: str) -> Iterator[tuple[Any, list[str]]]:
    """A Chromium page on ``base_url`` with every request outside it refused — the network cut —
    and logged in the list yielded beside the page."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(base_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 900, "height": 1000})
            context.route("**/*", only_local)
            page = context.new_page()
            page.goto(base_url)
            page.wait_for_function("window.demo && window.demo.ready")
            page.evaluate("window.demo.ready")
            yield page, outside
        finally:
            browser.close()


def replay(page: Any, rows: Sequence[Sequence[float]]) -> None:
    page.evaluate(REPLAY, {"rows": [list(map(float, row)) for row in rows], "between": BETWEEN})


def record_one(page: Any, button: str, rows: Sequence[Sequence[float]]) -> None:
    """Tap ``button`` (#record, #recognise or #live), replay ``rows``, tap it again."""
    page.click(button)
    page.wait_for_selector(f"{button}.recording")
    replay(page, rows)
    page.click(button)
    page.wait_for_selector(f"{button}:not(.recording)")
    page.evaluate("window.demo.busy")
