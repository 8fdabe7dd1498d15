"""The wearer's page (``make demo``) in a real browser: Debian's Chromium, headless, driven with
synthetic ``devicemotion`` events that replay the dataset's recordings (``demo/browser.py``), the
network cut. The page's answers are compared with ``predict.py``'s on the same recordings and
models; its zip with ``personalize.py``'s reading of it."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_ROOT, REAL_DATA, compose_train_config
from hydra.core.global_hydra import GlobalHydra

from demo.browser import DESKTOP, PHONE, browser_page, record_one, replay, served, why_no_browser
from demo.build import CLASSIFIER, OUT, SPOTTER, assemble_site, pictograms

pytestmark = pytest.mark.integration  # trains, starts a browser: not in make test-fast

DIST = OUT / "npm" / "node_modules" / "onnxruntime-web" / "dist"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def data(synthetic_zip) -> Path:
    """The recordings to replay: the real dataset where CI has it, else the synthetic one."""
    return Path(REAL_DATA) if REAL_DATA else synthetic_zip


@pytest.fixture(scope="module")
def recordings(data) -> dict[tuple[int, int], np.ndarray]:
    """U01's first three repetitions of each gesture, as the file's text says (float64)."""
    from gesture_rnn.data.facts import SEQUENCE_PATH
    from gesture_rnn.data.reading import decode_text, iter_files

    found = {}
    for name, content in iter_files(data, SEQUENCE_PATH.search):
        user, gesture, repetition = (int(x) for x in SEQUENCE_PATH.search(name).groups())
        if user == 1 and repetition <= 3:
            rows = [line.split()[-3:] for line in decode_text(content, name).splitlines() if line.strip()]
            found[(gesture, repetition)] = np.array(rows, dtype=np.float64)
    assert len(found) == 60
    return found


@pytest.fixture(scope="module")
def site(synthetic_zip, data, tmp_path_factory) -> dict:
    """A page built as make demo builds it, with a small classifier trained on the synthetic data
    and exported as int8 (export.py), and an int8 spotter step model."""
    if reason := why_no_browser(DIST):
        pytest.skip(reason)
    import torch

    import gesture_rnn
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.data.streams import VOCABULARY, RestModel, build_stream
    from gesture_rnn.streaming.decisions import DecisionRule
    from gesture_rnn.streaming.onnx import export_spotter
    from gesture_rnn.streaming.spotter import GestureSpotter

    root = tmp_path_factory.mktemp("demo")
    models = root / "models"
    # U01 held out: its recordings are the ones replayed, and personalize.py refuses a person the
    # base model trained on (compared by content)
    overrides = [f"data.path={synthetic_zip}", "model.net.hidden=16", "trainer.max_epochs=4", "logger=none",
                 "data.split=users", "data.test_users=[U01]"]  # fmt: skip
    gesture_rnn.train(compose_train_config(root, overrides))
    GlobalHydra.instance().clear()
    checkpoint = root / "outputs" / "run" / "checkpoints" / "last.ckpt"
    export = [f"ckpt_path={checkpoint}", "quantize=int8", f"out={models / CLASSIFIER[0]}", "teachable=true",
              f"data_path={synthetic_zip}", f"cache_dir={root / 'cache'}"]  # fmt: skip
    run(str(PROJECT_ROOT / "export.py"), *export, cwd=root)

    # a spotter trained for a few dozen steps on this stream's labels (trained weights, not an
    # initialisation: what int8 rounding and graph fusing act on): the page must step it as
    # predict.py does; its threshold is set where this stream crosses it now and then
    from gesture_rnn.streaming.decisions import step_labels

    records = load_records(data, root / "cache")
    built = build_stream(records, "U01", 0, RestModel.from_records(records))
    stream = built.samples[:1100]  # > 1000
    torch.manual_seed(0)
    net = GestureSpotter(VOCABULARY)
    net.set_normalization(torch.from_numpy(stream.mean(axis=0)), torch.from_numpy(stream.std(axis=0)))
    labels = torch.from_numpy(step_labels(len(built.samples), built.events, VOCABULARY)[:1100])
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(40):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(stream)[None])[0], labels)
        loss.backward()
        optimizer.step()
    net.eval()
    gestures = net.probabilities(stream)[:, 1:].max(axis=1)
    export_spotter(net, DecisionRule(float(np.quantile(gestures, 0.9)), 2), models / SPOTTER[0], int8=True)
    built = assemble_site(root / "site", DIST, models, pictograms(data))
    return {"site": built, "models": models, "checkpoint": checkpoint, "stream": stream, "root": root}


@pytest.fixture(scope="module")
def page(site):
    with served(site["site"]) as url, browser_page(url) as (page, outside):
        yield page
        assert outside == [], f"the page asked for files outside the local server: {outside}"


def test_the_page_answers_each_replayed_gesture_as_predict_does(page, site, recordings, tmp_path):
    """Each recording, replayed through the accelerometer into "One gesture", gets the answer
    predict.py gives for the file with the same int8 model: the gesture (or unsure, below a
    min_probability set where about half the answers fall) and its probability within 1e-4."""
    folder = tmp_path / "replayed" / "U01"
    for (gesture, repetition), rows in sorted(recordings.items()):
        if repetition == 1:
            target = folder / f"{gesture:02d}" / "01.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(" ".join(repr(float(v)) for v in row) + "\n" for row in rows))

    def predict(min_probability: float) -> list[dict]:
        done = run(str(PROJECT_ROOT / "predict.py"), f"onnx={site['models'] / CLASSIFIER[0]}",
                   f"input={folder.parent}", "output=json", f"min_probability={min_probability}",
                   cwd=tmp_path)  # fmt: skip
        return sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda a: a["file"])

    threshold = round(float(np.median([answer["probability"] for answer in predict(0.0)])), 4)
    expected = predict(threshold)  # U01/01/01.txt, U01/02/01.txt, ...
    assert {answer["gesture"] == "unsure" for answer in expected} == {True, False}
    page.click("nav button[data-view=recognise]")
    page.fill("#min-probability", str(threshold))
    for (_, repetition), rows in sorted(recordings.items()):
        if repetition == 1:
            record_one(page, "#recognise", rows)
    shown = page.evaluate("window.demo.answers")
    assert len(shown) == len(expected) == 20
    for page_answer, answer in zip(shown, expected, strict=True):
        assert page_answer["gesture"] == answer["gesture"], answer["file"]
        assert abs(page_answer["probability"] - answer["probability"]) < 1e-4, answer["file"]
        assert [t["gesture"] for t in page_answer["top3"]] == [t["gesture"] for t in answer["top3"]]
    last = expected[-1]
    text = page.inner_text("#answer-text")
    assert (f"gesture {last['gesture']} " in text) or text.startswith("unsure"), text


def test_a_recorded_set_downloads_as_a_zip_personalize_takes(page, site, recordings, tmp_path):
    """Two takes of every gesture (one redone) download as a zip in the dataset's layout whose
    recordings equal the replayed ones, and personalize.py adapts a model with it as it is."""
    page.click("nav button[data-view=record]")
    page.fill("#repetitions", "2")
    page.dispatch_event("#repetitions", "change")
    page.fill("#user", "U09")
    for (_, repetition), rows in sorted(recordings.items()):
        if repetition <= 2:
            record_one(page, "#record", rows)
    assert page.inner_text("#record-count") == "40 of 40 recorded"
    # redo gesture 3's first take (with its third repetition): the zip must hold the redone one
    page.click("#record-grid .chip[data-gesture='3'][data-repetition='0']")
    record_one(page, "#record", recordings[(3, 3)])
    with page.expect_download() as download:
        page.click("#download")
    archive = tmp_path / download.value.suggested_filename
    download.value.save_as(archive)
    assert archive.name == "my-gestures-U09.zip"
    assert "shots=1" in page.inner_text("#message"), "personalize.py's command, the shots 2 takes allow"

    from gesture_rnn.data.parsing import parse_sequence

    with zipfile.ZipFile(archive) as zipped:
        names = sorted(zipped.namelist())
        assert names == [f"my-gestures/U09/{g:02d}/{r:02d}.txt" for g in range(1, 21) for r in (1, 2)]
        for name in names:
            gesture, repetition = int(name.split("/")[2]), int(name[-6:-4])
            got = parse_sequence(zipped.read(name).decode(), name)  # the dataset's 6 columns
            want = recordings[(3, 3) if (gesture, repetition) == (3, 1) else (gesture, repetition)]
            np.testing.assert_allclose(got, want, atol=1e-6)
    done = run(str(PROJECT_ROOT / "personalize.py"), f"ckpt_path={site['checkpoint']}", f"input={archive}",
               "shots=1", "tracking_uri=null", f"out={tmp_path / 'mine.ckpt'}", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "mine.ckpt").is_file(), done.stdout[-2000:]


def test_a_take_longer_than_a_model_reads_is_stopped_and_not_kept(page, site):
    """A take of one gesture stops at 1,000 samples (the longest recording predict.py and
    personalize.py read) and is not kept; the wearer is told in one line."""
    page.click("nav button[data-view=record]")
    before = page.inner_text("#record-count")
    record_one(page, "#record", site["stream"][:1001].astype(np.float64))
    assert "reached 1000 samples" in page.inner_text("#message")
    assert page.inner_text("#record-count") == before


def test_the_live_stream_detects_what_predict_detects_in_the_same_stream(page, site, tmp_path):
    """A stream replayed into "Live stream" is stepped sample by sample by the int8 spotter in the
    page: the detections (sample and gesture) are predict.py's, their probabilities within 1e-3 —
    the GRU state carried over hundreds of steps gathers the rounding differences between
    onnxruntime's WebAssembly and native builds (up to 1.5e-4 seen). A live stream has no length
    limit: this one is longer than the longest take of one gesture."""
    from gesture_rnn.data.streams import read_stream

    stream_file = tmp_path / "walk.txt"
    stream_file.write_text("".join(f"{round(i * 1000 / 9)} {x:.6f} {y:.6f} {z:.6f}\n"
                                   for i, (x, y, z) in enumerate(site["stream"])))  # fmt: skip
    samples, times = read_stream(stream_file)
    page.click("nav button[data-view=recognise]")
    page.click("#live")
    page.wait_for_selector("#live.recording")
    replay(page, samples.astype(np.float64))
    page.click("#live")
    page.evaluate("window.demo.busy")
    shown = page.evaluate("window.demo.detections")
    done = run(str(PROJECT_ROOT / "predict.py"), f"spotter={site['models'] / SPOTTER[0]}",
               f"stream={stream_file}", "output=json", cwd=tmp_path)  # fmt: skip
    expected = [json.loads(line) for line in done.stdout.splitlines()]
    assert expected, "the threshold lets the spotter detect something in this stream"
    assert [(int(times[d["sample"]]), d["gesture"]) for d in shown] == [
        (d["time_ms"], d["gesture"]) for d in expected
    ]
    differences = [abs(a["probability"] - b["probability"]) for a, b in zip(shown, expected, strict=True)]
    assert max(differences) < 1e-3, differences
    assert len(page.query_selector_all("#detections li")) == min(len(expected), 10), "the latest 10 shown"


def test_a_file_that_is_not_a_model_is_refused_in_one_line(page, site, tmp_path):
    """Choosing files in the page: a model without its sidecar, a sidecar with a file that is not
    ONNX, or a classifier under a spotter's sidecar gets one line naming the problem; the loaded
    models stay."""
    before = page.text_content("#classifier-name")
    assert before.startswith("classifier.onnx (int8")
    (tmp_path / "broken.onnx").write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text(json.dumps({"class_index_to_gesture": list(range(1, 21))}))
    page.set_input_files("#choose", [str(tmp_path / "broken.onnx")])
    page.wait_for_function("document.querySelector('#message').textContent.includes('choose one .onnx')")
    page.set_input_files("#choose", [str(tmp_path / "broken.onnx"), str(tmp_path / "broken.onnx.json")])
    page.wait_for_function("document.querySelector('#message').textContent.includes('not an ONNX model')")
    message = page.inner_text("#message")
    assert "broken.onnx" in message and "\n" not in message
    spotter_before = page.text_content("#spotter-name")
    (tmp_path / "mixed.json").write_text((site["models"] / SPOTTER[1]).read_text())
    (tmp_path / "mixed.onnx").write_bytes((site["models"] / CLASSIFIER[0]).read_bytes())
    page.set_input_files("#choose", [str(tmp_path / "mixed.onnx"), str(tmp_path / "mixed.json")])
    page.wait_for_function("document.querySelector('#message').textContent.includes('not a spotter step')")
    relabelled = json.loads((site["models"] / CLASSIFIER[1]).read_text())  # gestures 1 and 2 swapped
    relabelled["class_index_to_gesture"] = [2, 1, *range(3, 21)]
    (tmp_path / "relabelled.onnx").write_bytes((site["models"] / CLASSIFIER[0]).read_bytes())
    (tmp_path / "relabelled.onnx.json").write_text(json.dumps(relabelled))
    page.set_input_files(
        "#choose", [str(tmp_path / "relabelled.onnx"), str(tmp_path / "relabelled.onnx.json")]
    )
    page.wait_for_function(
        "document.querySelector('#message').textContent.includes(\"is not the model's own\")"
    )
    assert page.text_content("#classifier-name") == before
    assert page.text_content("#spotter-name") == spotter_before


def test_the_resampler_interpolates_each_axis_at_the_models_ticks(tmp_path):
    """DeviceMotion events at a phone's own irregular times (~60 Hz) become samples at fixed
    ticks of 1000/9 ms from the first event, each axis interpolated linearly between the events
    around a tick: a signal linear in time comes back exact; a late or repeated event is skipped."""
    import shutil

    if shutil.which("node") is None:
        pytest.skip("Node.js is missing: the page's modules are checked with node")
    module = tmp_path / "motion.mjs"  # an ES module by its name, whatever Node's version
    module.write_text((PROJECT_ROOT / "demo" / "page" / "motion.js").read_text())
    script = tmp_path / "check.mjs"
    script.write_text(
        'import { Resampler } from "./motion.mjs";\n'
        """const out = [];
const r = new Resampler(9, (t, v) => out.push([t, ...v]));
let t = 5000;
let last = t;
const f = (s) => [1 + 0.002 * s, -3 - 0.001 * s, 9.8 + 0.0005 * s];
for (let k = 0; k < 120; k += 1) {
  r.push(t, f(t));
  last = t;
  if (k === 50) r.push(t - 3, [99, 99, 99]);  // late: ignored
  t += 16.7 + 3 * Math.sin(k);  // irregular, as a phone's events are
}
const gap = r.push(last + 1500, f(last + 1500));  // 1.5 s without an event: nothing made up
console.log(JSON.stringify({ out, last, gap }));
"""
    )
    done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    samples, period = np.array(result["out"]), 1000 / 9
    assert len(samples) == int((result["last"] - 5000) // period) + 1, "every tick up to the last event"
    assert result["gap"] is False, "a pause of over a second is reported, not filled in"
    np.testing.assert_allclose(samples[:, 0], np.arange(len(samples)) * period, atol=1e-9)
    ticks = 5000 + samples[:, 0]
    expected = np.stack([1 + 0.002 * ticks, -3 - 0.001 * ticks, 9.8 + 0.0005 * ticks], axis=1)
    np.testing.assert_allclose(samples[:, 1:], expected, atol=1e-9)


SERVE = ["-m", "demo.serve", "--site", "{site}", "--port", "0"]  # the built page, on a free port


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "demo.serve", "--site", "{tmp}/nothing"], "holds no built page: run make demo"),
        (
            [*SERVE, "--cert", "{tmp}/none.pem", "--key", "{site}/index.html"],
            "DEMO_CERT={tmp}/none.pem is not a file",
        ),
        ([*SERVE, "--cert", "{site}/index.html"], "DEMO_CERT is set but DEMO_KEY is not"),
        (
            [*SERVE, "--cert", "{site}/index.html", "--key", "{site}/index.html"],
            "are not a certificate and its private key",
        ),
        (["-m", "demo.serve", "--site", "{site}", "--port", "70000"], "DEMO_PORT='70000' is invalid"),
        (["-m", "demo.build", "--data", "{tmp}/no.zip", "--out", "{tmp}/out"], "{tmp}/no.zip does not exist"),
    ],
)
def test_make_demo_refuses_what_it_cannot_use_in_one_line(args, message, tmp_path):
    """No built page, an unreadable certificate, a dataset that is not there: one line, exit 2,
    before anything is served or trained."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<!doctype html>")
    command = [sys.executable, *(a.format(tmp=tmp_path, site=site) for a in args)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert message.format(tmp=tmp_path) in done.stderr


@contextlib.contextmanager
def fresh_tab(page, viewport: dict | None = None):
    """A new tab of the page's browser (its network cut too), on the page with no motion yet."""
    fresh = page.context.new_page()
    try:
        if viewport:
            fresh.set_viewport_size(viewport)
        fresh.goto(page.url.split("#")[0])
        yield fresh
    finally:
        fresh.close()


def test_a_desktop_is_told_in_one_line_that_the_page_needs_a_phones_motion_sensor(page, recordings):
    """No reading within a moment: one line saying what the page needs and how to reach it from a
    phone; the first reading (a phone) takes it away. A fresh tab: no motion has reached it."""
    with fresh_tab(page, DESKTOP) as fresh:
        fresh.wait_for_selector("#sensor:not([hidden]) img.qr", timeout=10_000)
        note = fresh.inner_text("#sensor span")
        assert note.startswith("No motion sensor here") and "on a phone" in note and "\n" not in note
        port = page.url.split(":")[2].split("/")[0]
        assert f"adb reverse tcp:{port} tcp:{port}" in note and f"http://localhost:{port}/" in note
        code = fresh.eval_on_selector("#sensor img.qr", "i => [i.complete && i.naturalWidth, i.alt]")
        assert code[0] > 0 and code[1] == f"QR code of http://localhost:{port}/", "made by the server"
        replay(fresh, recordings[(1, 1)][:3])
        fresh.wait_for_selector("#sensor", state="hidden")


def test_at_phone_width_the_title_and_the_views_do_not_overlap_and_the_plot_has_axes(page, recordings):
    with fresh_tab(page, PHONE) as fresh:
        fresh.wait_for_function("window.demo && window.demo.ready")
        replay(fresh, recordings[(1, 1)][:3])  # a phone: its motion sensor answers
        fresh.wait_for_selector("#sensor", state="hidden")
        title, nav = (
            fresh.eval_on_selector(s, "e => e.getBoundingClientRect().toJSON()") for s in ("h1", "nav")
        )
        apart = nav["left"] >= title["right"] or nav["top"] >= title["bottom"]
        assert apart, (title, nav)
        drawn = fresh.evaluate(
            "(() => { const c = document.querySelector('#plot');"
            " const pixels = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            " return pixels.some((v, i) => i % 4 === 3 && v > 0); })()"
        )
        assert drawn, "the plot shows its axes before any motion"


def own_gesture(rng: np.random.Generator) -> np.ndarray:
    """A gesture none of the twenty synthetic ones is: the watch held level, a fast wobble."""
    t = np.arange(int(rng.integers(14, 24)))
    rows = np.zeros((len(t), 3))
    rows[:, 2] = 9.81 + 1.5 * np.sin(1.4 * t)
    return rows + rng.normal(0, 0.3, rows.shape)


def test_a_gesture_of_ones_own_is_taught_in_the_page_as_teach_py_teaches_it(
    page, site, synthetic_zip, recordings, tmp_path
):
    """Three takes recorded in the page teach it there (under 1 s, nothing sent anywhere); the
    same takes given to teach.py teach the checkpoint the page's model was exported from: the
    page and predict.py answer the next takes, and a dataset gesture, alike."""
    rng = np.random.default_rng(5)
    own = [own_gesture(rng) for _ in range(5)]
    page.click("nav button[data-view=recognise]")
    page.fill("#own-name", "level wobble")
    for rows in own[:3]:
        record_one(page, "#take", rows)
    page.click("#teach")
    page.evaluate("window.demo.busy")
    taught = page.evaluate("window.demo.taught")[-1]
    assert (taught["gesture"], taught["name"], taught["takes"]) == (21, "level wobble", 3)
    assert taught["ms"] < 1000, "teaching in the browser takes under a second"
    page.fill("#min-probability", "0")
    queries = [*own[3:], recordings[(2, 1)]]
    record_one(page, "#recognise", queries[0])
    assert page.inner_text("#answer-text").startswith('gesture 21 "level wobble"')
    for rows in queries[1:]:
        record_one(page, "#recognise", rows)
    shown = page.evaluate("window.demo.answers")[-3:]

    def write(rows: np.ndarray, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(" ".join(repr(float(v)) for v in row) + "\n" for row in rows))

    for n, rows in enumerate(own[:3]):
        write(rows, tmp_path / "takes" / f"{n + 1:02d}.txt")
    for n, rows in enumerate(queries):
        write(rows, tmp_path / "queries" / f"{n + 1:02d}.txt")
    done = run(str(PROJECT_ROOT / "teach.py"), f"ckpt_path={site['checkpoint']}",
               f"input={tmp_path / 'takes'}", "name=level wobble", f"data_path={synthetic_zip}",
               f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path}/taught.ckpt", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = run(str(PROJECT_ROOT / "predict.py"), f"ckpt_path={tmp_path / 'taught.ckpt'}",
               f"input={tmp_path / 'queries'}", "output=json", cwd=tmp_path)  # fmt: skip
    expected = sorted((json.loads(line) for line in done.stdout.splitlines()), key=lambda a: a["file"])
    assert [a["gesture"] for a in expected][:2] == [21, 21], "the CLI answers the new takes as the gesture"
    for page_answer, answer in zip(shown, expected, strict=True):
        assert page_answer["gesture"] == answer["gesture"], answer["file"]
        if answer["gesture"] == 21:
            assert page_answer["name"] == answer["name"] == "level wobble"
        # the page runs the int8 export, the CLI the float checkpoint
        assert abs(page_answer["probability"] - answer["probability"]) < 0.05
