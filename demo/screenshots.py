"""``make screenshots``: the wearer's page as it looks on a desktop (no motion sensor: the line
saying what it needs and the QR code of its address) and at a phone's width (a take replayed) ->
``docs/images/page-desktop.png``, ``docs/images/page-phone.png``, in headless Chromium.

Needs the built page (``make demo`` builds it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from demo.browser import DESKTOP, PHONE, browser_page, record_one, served, why_no_browser
from demo.build import OUT, fail
from gesture_rnn.config.resolvers import PROJECT_ROOT

# a made-up take (rows of x, y, z in m/s² around gravity): the picture shows an answer, any answer
TAKE = [[0.2 * (n % 7) - 0.6, 9.8 - 0.1 * (n % 5), 0.4 * ((n % 9) - 4)] for n in range(24)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, default=OUT / "site")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "images")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        fail(f"{args.site} holds no built page: run make demo (python -m demo.build) first")
    if why := why_no_browser(args.site / "ort"):
        fail(why)
    args.out.mkdir(parents=True, exist_ok=True)
    with served(args.site) as url, browser_page(url) as (page, _outside):
        desktop = page.context.new_page()
        desktop.set_viewport_size(DESKTOP)
        desktop.goto(url)
        desktop.wait_for_selector("#sensor:not([hidden]) img.qr", timeout=15_000)
        desktop.screenshot(path=str(args.out / "page-desktop.png"))
        phone = page.context.new_page()
        phone.set_viewport_size(PHONE)
        phone.goto(url + "#recognise")
        phone.wait_for_function("window.demo && window.demo.ready")
        phone.evaluate("window.demo.ready")
        record_one(phone, "#recognise", TAKE)
        phone.wait_for_selector("#sensor", state="hidden")
        phone.screenshot(path=str(args.out / "page-phone.png"), full_page=True)
    for name in ("page-desktop.png", "page-phone.png"):
        print(f"wrote {args.out / name}")


if __name__ == "__main__":
    main()
