"""How long draw.py's page takes from the end of a stroke to the updated page, for the four default models (small,
medium, large, best), feature maps and integrated gradients of the picked model included.

    python experiments/draw_latency.py                # writes results/logs/draw_latency.txt
    python experiments/draw_latency.py --strokes 20   # quicker

Two figures, each as median and 90th percentile:
- the server's own time per request (prepare the drawing with predict.to_mnist, the four models' probabilities and
  feature maps, the picked model's integrated gradients), as draw.py reports it in timing_ms;
- the page's, in headless Chromium (Debian's, driven by Playwright): from the pointerup event that ends a stroke
  to the next animation frame after the page set data-ready="true" with the answers shown. While a stroke is drawn
  the page also asks (when no request is in flight), so a stroke's end may wait for one already sent, as a
  student's would.
Each stroke is drawn on a cleared canvas: a 0, a 1 and a 7 in turn, with real pointer events.
"""

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from labtools import console  # noqa: E402

console.start("draw_latency.py")

import numpy as np  # noqa: E402

import draw  # noqa: E402
from labtools import backend  # noqa: E402

SHAPES = {
    0: [[(140 + 60 * np.sin(t / 24 * 2 * np.pi), 140 - 95 * np.cos(t / 24 * 2 * np.pi)) for t in range(25)]],
    1: [[(140, 40), (140, 240)]],
    7: [[(70, 50), (210, 50), (120, 240)]],
}
WATCH = """() => {
  window.ends = []; window.readies = [];
  document.getElementById("draw").addEventListener("pointerup", () => window.ends.push(performance.now()), true);
  new MutationObserver(() => {
    if (document.body.dataset.ready === "true")
      requestAnimationFrame(() => window.readies.push(performance.now()));
  }).observe(document.body, { attributes: true, attributeFilter: ["data-ready"] });
  window.maps = [];
  new MutationObserver(() => requestAnimationFrame(() => window.maps.push(performance.now())))
    .observe(document.getElementById("attribution"), { attributes: true, attributeFilter: ["data-drawn"] });
}"""


def cpu_name():
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def figures(values, what):
    values = np.asarray(values)
    return f"median {np.median(values):6.1f} ms, p90 {np.percentile(values, 90):6.1f} ms ({len(values)} {what})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--strokes", type=int, default=60, help="strokes measured per picked model")
    parser.add_argument("--out", default=str(ROOT / "results" / "logs" / "draw_latency.txt"))
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from test_draw import CHROMIUM_FLAGS

    live = draw.load_models([])
    server = draw.make_server(live)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    answerer = server.RequestHandlerClass.answerer
    load_before = os.getloadavg()
    lines = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        for picked in ("large", "best"):
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(base)
            page.wait_for_selector(f'[data-model="{picked}"]')
            page.click(f'[data-model="{picked}"]')
            page.evaluate(WATCH)
            server_times, original = [], answerer.answer

            def timed(request, original=original):
                found = original(request)
                kind = "attribution" if request.get("answers") is False else "answers"
                server_times.append((kind, found["timing_ms"]["total"]))
                return found

            answerer.answer = timed
            box = page.locator("#draw").bounding_box()
            page_times, map_times = [], []
            for stroke in range(args.strokes + 3):  # the first three: warming up
                page.click("#clear")
                page.wait_for_function("document.body.dataset.ready === 'true'")
                page.evaluate("() => { window.ends = []; window.readies = []; window.maps = []; }")
                server_times.clear()
                for path in SHAPES[(0, 1, 7)[stroke % 3]]:
                    page.mouse.move(box["x"] + path[0][0], box["y"] + path[0][1])
                    page.mouse.down()
                    for x, y in path[1:]:
                        page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
                    page.mouse.up()
                page.wait_for_function("window.ends.length && window.readies.some((t) => t > window.ends.at(-1))")
                page.wait_for_function("window.maps.some((t) => t > window.ends.at(-1))")
                end, readies, maps = page.evaluate("[window.ends.at(-1), window.readies, window.maps]")
                if stroke >= 3:
                    page_times.append(min(t for t in readies if t > end) - end)
                    map_times.append(min(t for t in maps if t > end) - end)
                    all_server.setdefault(picked, []).extend(server_times)
            answerer.answer = original
            for kind in ("answers", "attribution"):
                found = [ms for each, ms in all_server[picked] if each == kind]
                lines.append(f"picked {picked:5s}  server, {kind:11s}: {figures(found, 'requests')}")
            lines.append(f"picked {picked:5s}  page, stroke end to answers and feature maps shown: "
                         f"{figures(page_times, 'strokes')}")
            lines.append(f"picked {picked:5s}  page, stroke end to where it looks (integrated gradients) shown: "
                         f"{figures(map_times, 'strokes')}")
            page.close()
        browser.close()
    load_after = os.getloadavg()
    header = [
        "draw.py latency: end of a stroke to the updated page, models small, medium, large, best (results/models/),",
        "feature maps of all four, filters and integrated gradients (32 steps) of the picked one.",
        f"command: python experiments/draw_latency.py --strokes {args.strokes}",
        f"CPU: {cpu_name()}, {os.cpu_count()} cores; {backend.describe()}; Python {platform.python_version()}",
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); the machine is shared with "
        "two other helpers' work, so these are figures under some load",
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "server: timing_ms.total of each request: answers (all four models' probabilities and feature maps, sent",
        "while the stroke is drawn and at its end, 140 x 140 pixels) and attribution (the picked model's integrated",
        "gradients, asked after a stroke's answers are shown)",
        "page: pointerup to the animation frame after data-ready=\"true\", answers and feature maps shown",
        "(headless Chromium, Playwright); where the model looks follows one attribution request later",
        "",
    ]
    text = "\n".join(header + lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


all_server = {}

if __name__ == "__main__":
    main()
