"""``make demo_report``: the wearer's page measured in headless Chromium -> reports/demo.md and
screenshots of its two views beside it.

Builds the page as ``make demo`` does (training its models the first time), then, with the
network cut: the page's load time (navigation to models ready, three fresh loads); the size of
what it loads; the classifier's time per gesture and its answers on every recording of U08 (the
user ``experiment=best`` holds out), beside onnxruntime's native CPU build in this process on the
same recordings (the peer); and the spotter's time per sample on U08's stream. Every figure is
from replayed recordings, so it measures the page's work, not a person's speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from demo import build
from demo.browser import browser_page, record_one, replay, served
from gesture_rnn.config.resolvers import PROJECT_ROOT
from gesture_rnn.utils.atomic import write_text_atomically

HELD_OUT = "U08"  # experiment=best's data.test_users


def recordings_of(data: Path, user: str) -> list[tuple[str, int, np.ndarray]]:
    from gesture_rnn.data.facts import SEQUENCE_PATH
    from gesture_rnn.data.reading import decode_text, iter_files

    found = []
    for name, content in iter_files(data, SEQUENCE_PATH.search):
        number, gesture, _ = (int(x) for x in SEQUENCE_PATH.search(name).groups())
        if f"U{number:02d}" == user:
            rows = [line.split()[-3:] for line in decode_text(content, name).splitlines() if line.strip()]
            found.append((name, gesture, np.array(rows, dtype=np.float64)))
    return sorted(found, key=lambda item: item[0])


def native_ms(model: Path, recordings: list[np.ndarray]) -> tuple[float, np.ndarray]:
    """onnxruntime (CPU, one thread) on each recording alone: median ms and the probabilities."""
    from gesture_rnn.deploy.runtime import ort_session

    session = ort_session(model, threads=1)
    times, out = [], []
    for rows in recordings:
        accel = rows.astype(np.float32)[None]
        started = time.perf_counter()
        lengths = np.array([len(rows)], dtype=np.int64)
        probabilities = session.run(None, {"accel": accel, "lengths": lengths})[0]
        times.append((time.perf_counter() - started) * 1000)
        out.append(probabilities[0])
    return statistics.median(times), np.array(out)


def page_load_ms(url: str, loads: int = 3) -> list[float]:
    times = []
    for _ in range(loads):
        with browser_page(url) as (page, _outside):
            times.append(float(page.evaluate("window.demo.readyAt")))
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.measure", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "demo.md")
    args = parser.parse_args(argv)
    data = build.dataset(args.data)
    build.main(["--data", str(data)])
    site = build.OUT / "site"
    record = build.OUT / "models" / "build.json"
    timings = json.loads(record.read_text()) if record.is_file() else {}
    held_out = recordings_of(data, HELD_OUT)

    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.data.streams import RestModel, build_stream

    records = load_records(data, None)
    others = records.select(np.flatnonzero(records.users != HELD_OUT))
    stream = build_stream(records, HELD_OUT, 0, RestModel.from_records(others))

    with served(site) as url:
        loads = page_load_ms(url)
        with browser_page(url) as (page, outside):
            page.click("nav button[data-view=recognise]")
            for _, _, rows in held_out:
                record_one(page, "#recognise", rows)
            answers = page.evaluate("window.demo.answers")
            page.click("#live")
            page.wait_for_selector("#live.recording")
            replay(page, stream.samples.astype(np.float64))
            page.click("#live")
            page.evaluate("window.demo.busy")
            steps = page.evaluate("window.demo.timings.stepMs")
            detections = page.evaluate("window.demo.detections")
            page.screenshot(path=str(args.report.with_name("demo-recognise.png")), full_page=True)
            page.click("nav button[data-view=record]")
            for _, _, rows in held_out[:5]:
                record_one(page, "#record", rows)
            page.screenshot(path=str(args.report.with_name("demo-record.png")), full_page=True)
            assert not outside, f"the page asked for files outside the local server: {outside}"

    labels = np.array([gesture for _, gesture, _ in held_out])
    shown = np.array([a["best_guess"] if a["gesture"] == "unsure" else a["gesture"] for a in answers])
    page_probabilities = np.array([a["probability"] for a in answers])
    peer_ms, native = native_ms(site / "models" / build.CLASSIFIER[0], [rows for _, _, rows in held_out])
    native_top = native.max(axis=1)
    from gesture_rnn.streaming.decisions import Detection
    from gesture_rnn.streaming.events import TOLERANCE, match_events
    from studies.reports import machine

    found = [Detection(d["sample"], d["gesture"], d["probability"]) for d in detections]
    events = match_events(stream.events, found, TOLERANCE)
    files = [path for path in site.rglob("*") if path.is_file()]
    sizes = {path.relative_to(site).as_posix(): path.stat().st_size for path in files}
    gesture_ms, accuracy = [a["ms"] for a in answers], float((shown == labels).mean())
    difference = float(np.abs(page_probabilities - native_top).max())
    lines = [
        "# The wearer's page, measured in a browser",
        "",
        "Generated by `make demo_report` (`python -m demo.measure`): headless Chromium (Debian's package) "
        f"driving the page built by `make demo`, with the network cut. Machine: {machine()}.",
        "",
        "## Building it (`make demo`, the first time)",
        "",
        f"- the classifier, `train.py experiment=best` ({HELD_OUT} held out) and its int8 "
        f"export: {seconds(timings, 'classifier_s')}",
        "- the spotter, trained on the streams of U01-U07 (its rule chosen on U08) and exported as int8: "
        f"{seconds(timings, 'spotter_s')}",
        "",
        "## Size of what the page loads",
        "",
        "| file | bytes |",
        "|---|---|",
        *[f"| `{name}` | {size:,} |" for name, size in sorted(sizes.items(), key=lambda item: -item[1])],
        f"| all | {sum(sizes.values()):,} |",
        "",
        "## Time",
        "",
        "- page load, navigation to both models ready (3 fresh loads): "
        + ", ".join(f"{ms:.0f} ms" for ms in loads),
        f"- one gesture, classified in the page (onnxruntime-web {build.pinned_version()}, WebAssembly, "
        f"one thread), {len(answers)} recordings of {HELD_OUT}: median "
        f"{statistics.median(gesture_ms):.1f} ms, 95th percentile {np.percentile(gesture_ms, 95):.1f} ms; "
        f"the same model on onnxruntime's native CPU build in Python, one thread: median {peer_ms:.2f} ms",
        "- the live stream, one spotter step per sample in the page: median "
        f"{statistics.median(steps):.2f} ms, 95th percentile {np.percentile(steps, 95):.2f} ms "
        f"({len(steps):,} samples; a sample comes every 111 ms). The page's clock (`performance.now()`) "
        "has a 0.1 ms resolution in a page that is not cross-origin isolated, so these are to 0.1 ms.",
        "",
        "## Answers",
        "",
        f"- the page's answers on {HELD_OUT}'s {len(answers)} recordings (a person the classifier never "
        f"saw): accuracy {accuracy:.4f}; largest difference of the top probability from onnxruntime's "
        f"native build {difference:.1e}",
        f"- the live stream of all of {HELD_OUT}'s recordings ({stream.seconds / 60:.0f} min; gestures "
        f"5-20 to announce, 1-4 to ignore): event F1 {events.f1:.3f} (precision {events.precision:.3f}, "
        f"recall {events.recall:.3f}). {HELD_OUT} chose the spotter's decision rule, so this is not a new "
        "wearer's figure: `reports/stream.md` has those.",
        "",
        "![Record](demo-record.png)",
        "",
        "![Recognise](demo-recognise.png)",
    ]
    write_text_atomically(args.report, "\n".join(lines) + "\n", "report")
    print(f"  report  {args.report}")


def seconds(timings: dict, key: str) -> str:
    return f"{timings[key]:.0f} s" if key in timings else "not measured (the models were not trained here)"


if __name__ == "__main__":
    main()
