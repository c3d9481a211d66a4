"""The README's screenshot of draw.py's page: the four default models answering a hand-drawn 4, the large CNN
opened up (feature maps, filters, integrated gradients).

    python experiments/draw_screenshot.py            # writes results/plots/draw_page.png (Debian's chromium)
"""

import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from labtools import console  # noqa: E402

console.start("draw_screenshot.py")

import draw  # noqa: E402

FOUR = [[(170, 40), (80, 170), (215, 170)], [(175, 95), (175, 250)]]  # a 4 in two strokes, as many write it


def main(out=ROOT / "results" / "plots" / "draw_page.png"):
    from playwright.sync_api import sync_playwright
    from test_draw import CHROMIUM_FLAGS, draw_on

    server = draw.make_server(draw.load_models([]))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                             args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1180, "height": 900})
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        page.wait_for_selector('[data-model="large"]')
        draw_on(page, FOUR)
        page.wait_for_timeout(300)
        page.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
