// The wearer's page: record your own gestures (a zip for personalize.py) and see a model
// recognise them, one gesture at a time or in a live stream. Runs entirely in the browser.
import { Accelerometer, Resampler } from "./motion.js";
import { Classifier, Spotter, kindOf } from "./models.js";
import { zipFiles } from "./zip.js";

const GESTURES = Array.from({ length: 20 }, (_, i) => i + 1);
const $ = (selector) => document.querySelector(selector);
const pad = (n) => String(n).padStart(2, "0");

const demo = {
  classifier: null,
  spotter: null,
  rateHz: 9,
  recordings: new Map(), // gesture -> [samples | null] (k slots)
  slot: { gesture: 1, repetition: 0 },
  answers: [], // one per recognised gesture (predict.py's fields, plus ms)
  taught: [], // gestures of one's own: {gesture, name, takes, ms}
  detections: [], // live stream: {sample, time_s, gesture, probability}
  plot: [], // recent [x, y, z, p(gesture) | null]
  timings: { stepMs: [] }, // a classified gesture's ms is in its answer
  queue: Promise.resolve(), // the live stream's steps, in order
  busy: Promise.resolve(),
  loadedMs: null,
  errors: [],
};
window.demo = demo;

const accelerometer = new Accelerometer();

function say(text, isError = false) {
  const line = $("#message");
  line.textContent = text;
  line.classList.toggle("error", isError);
  if (isError) demo.errors.push(text);
}

function pictogram(element, gesture) {
  const col = (gesture - 1) % 4;
  const row = Math.floor((gesture - 1) / 4);
  element.style.backgroundPosition = `${(col * 100) / 3}% ${(row * 100) / 4}%`;
  element.title = `gesture ${gesture}`;
}

// ---------------------------------------------------------------- models
async function readSidecar(response, name) {
  try {
    return await response.json();
  } catch {
    throw new Error(`${name}: the sidecar is not JSON`);
  }
}

async function loadPair(bytes, sidecar, name) {
  const kind = kindOf(sidecar);
  if (kind === "classifier") demo.classifier = await Classifier.load(bytes, sidecar, name);
  else demo.spotter = await Spotter.load(bytes, sidecar, name);
  showModels();
}

async function loadDefaults() {
  const started = performance.now();
  const pairs = [["models/classifier.onnx", "models/classifier.onnx.json"], ["models/spotter.onnx", "models/spotter.json"]];
  for (const [model, sidecar] of pairs) {
    const [m, s] = await Promise.all([fetch(model), fetch(sidecar)]);
    if (!m.ok || !s.ok) continue; // no default of this kind: the wearer chooses one
    await loadPair(new Uint8Array(await m.arrayBuffer()), await readSidecar(s, sidecar), model.split("/").at(-1));
  }
  demo.loadedMs = performance.now() - started;
  demo.readyAt = performance.now(); // ms since navigation began
}

async function loadChosen(files) {
  const onnx = files.filter((f) => f.name.endsWith(".onnx"));
  const json = files.filter((f) => f.name.endsWith(".json"));
  if (onnx.length !== 1 || json.length !== 1) {
    throw new Error(`choose one .onnx model and its .json sidecar together (got ${files.map((f) => f.name).join(", ") || "nothing"})`);
  }
  let sidecar;
  try {
    sidecar = JSON.parse(await json[0].text());
  } catch {
    throw new Error(`${json[0].name} is not JSON: choose the sidecar export.py or make stream wrote`);
  }
  await loadPair(new Uint8Array(await onnx[0].arrayBuffer()), sidecar, onnx[0].name);
  say(`loaded ${onnx[0].name}`);
}

function showModels() {
  const c = demo.classifier;
  const s = demo.spotter;
  $("#classifier-name").textContent = c
    ? `${c.name} (${c.sidecar.quantization ? "int8" : "float"}, temperature ${Number(c.sidecar.temperature).toFixed(2)})`
    : "none: choose one";
  $("#spotter-name").textContent = s
    ? `${s.name} (gestures ${s.vocabulary[0]}–${s.vocabulary.at(-1)}; p ≥ ${s.rule.threshold}, hold ${s.rule.hold})`
    : "none: choose one";
  if (c) demo.rateHz = c.rateHz;
}

// ---------------------------------------------------------------- capture
// Records from the accelerometer, resampled to the models' rate, until stopped.
// A take of one gesture stops by itself at the models' longest input (predict.py and
// personalize.py refuse longer ones; a live stream has no end), and any capture breaks when the events stop for over a second (a locked screen): the
// samples in between would be made up, and a stream file with such a gap is refused too.
class Capture {
  constructor(button) {
    this.button = button;
    this.samples = [];
    this.onSample = () => {};
    this.stop = () => {};
    this.broken = null;
    this.limit = MAX_SAMPLES;
  }

  listen() {
    this.rateHz = demo.rateHz;
    this.startedAt = Date.now();
    const resampler = new Resampler(this.rateHz, (t, v) => {
      if (this.samples.length >= this.limit) return this.interrupt(`the take reached ${this.limit} samples, the longest a model reads`);
      if (this.limit < Infinity) this.samples.push(v); // a live stream keeps no samples
      plotSample(v, null);
      this.onSample(t, v);
    });
    this.stop = accelerometer.listen((t, v) => {
      if (!resampler.push(t, v)) this.interrupt("no motion for over a second (a locked screen?)");
    });
  }

  interrupt(reason) {
    if (this.broken) return;
    this.broken = reason;
    this.stop();
    say(`${reason}: tap ■ Stop`, true);
  }
}

const MAX_SAMPLES = 1000; // gesture_rnn/data/contract.py
let capture = null; // the running take, claimed before anything is awaited

async function toggle(button, startLabel, onStart, onStop) {
  if (capture !== null && capture.button !== button) {
    say("another recording is running: stop it first (its button shows ■ Stop)", true);
    return;
  }
  if (capture === null) {
    const next = new Capture(button);
    capture = next; // a second tap while this one starts is a stop, not a second take
    try {
      await accelerometer.permit(); // first: iOS asks only from the tap itself
      await onStart(next);
    } catch (err) {
      capture = null;
      say(String(err.message || err), true);
      return;
    }
    if (capture !== next) return; // stopped while starting
    next.listen();
    button.textContent = "■ Stop";
    button.classList.add("recording");
  } else {
    const done = capture;
    capture = null;
    done.stop();
    button.textContent = startLabel;
    button.classList.remove("recording");
    demo.busy = onStop(done); // what a test (or a tap) waits for: the answer, the saved take
    try {
      await demo.busy;
    } catch (err) {
      say(String(err.message || err), true);
    }
  }
}

// ---------------------------------------------------------------- record view
function repetitions() {
  return Math.max(1, Math.min(30, Number($("#repetitions").value) || 3));
}

function slots(gesture) {
  const k = repetitions();
  const list = demo.recordings.get(gesture) || [];
  while (list.length < k) list.push(null);
  demo.recordings.set(gesture, list);
  return list;
}

function nextEmpty() {
  for (const g of GESTURES) {
    const i = slots(g).findIndex((s, r) => s === null && r < repetitions());
    if (i >= 0) return { gesture: g, repetition: i };
  }
  return null;
}

function showRecordView() {
  const { gesture, repetition } = demo.slot;
  pictogram($("#record-pictogram"), gesture);
  $("#record-what").textContent = `gesture ${gesture}, repetition ${repetition + 1} of ${repetitions()}`;
  const grid = $("#record-grid");
  grid.replaceChildren();
  let done = 0;
  for (const g of GESTURES) {
    const cell = document.createElement("div");
    cell.className = "cell";
    const picture = document.createElement("div");
    picture.className = "pictogram small";
    pictogram(picture, g);
    cell.append(picture);
    slots(g).slice(0, repetitions()).forEach((s, r) => {
      const chip = document.createElement("button");
      chip.className = "chip" + (s ? " done" : "") + (g === gesture && r === repetition ? " current" : "");
      chip.textContent = s ? `${r + 1} ✓` : `${r + 1}`;
      chip.title = s ? `redo gesture ${g}, repetition ${r + 1} (${s.length} samples)` : `record gesture ${g}, repetition ${r + 1}`;
      chip.dataset.gesture = g;
      chip.dataset.repetition = r;
      chip.addEventListener("click", () => {
        demo.slot = { gesture: g, repetition: r };
        showRecordView();
      });
      if (s) done += 1;
      cell.append(chip);
    });
    grid.append(cell);
  }
  $("#record-count").textContent = `${done} of ${GESTURES.length * repetitions()} recorded`;
}

function usable(done) {
  if (done.broken) {
    say(`${done.broken}: not kept; try again`, true);
    return false;
  }
  if (done.samples.length < 2) {
    say("too short: no motion arrived (at least 2 samples are needed); try again", true);
    return false;
  }
  return true;
}

async function recordToggle() {
  await toggle($("#record"), "● Record", async (next) => {
    next.slot = { ...demo.slot }; // the take goes where it was started
  }, async (done) => {
    if (!usable(done)) return;
    const { gesture, repetition } = done.slot;
    slots(gesture)[repetition] = { samples: done.samples, startedAt: done.startedAt, rateHz: done.rateHz };
    say(`gesture ${gesture}, repetition ${repetition + 1}: ${done.samples.length} samples`);
    demo.slot = nextEmpty() || demo.slot;
    showRecordView();
  });
}

// the dataset's layout and columns: <root>/Uxx/yy/zz.txt, "millis nanos timestamp x y z"
function recordingText({ samples, startedAt, rateHz }) {
  const period = 1000 / rateHz;
  return samples
    .map((v, i) => {
      const ms = Math.round(i * period);
      const nanos = `${Math.round(i * period * 1e6)}`;
      return `${startedAt + ms} ${nanos} ${nanos} ${v.map((a) => a.toFixed(6)).join(" ")}`;
    })
    .join("\n") + "\n";
}

function userId() {
  const match = /^U?(\d{1,2})$/i.exec($("#user").value.trim());
  if (!match) throw new Error(`user ${JSON.stringify($("#user").value)} is invalid: U followed by 1-2 digits, e.g. U09`);
  return `U${pad(Number(match[1]))}`;
}

function download() {
  let user;
  try {
    user = userId();
  } catch (err) {
    say(err.message, true);
    return;
  }
  const files = [];
  for (const g of GESTURES) {
    slots(g).slice(0, repetitions()).forEach((s, r) => {
      if (s) files.push({ name: `my-gestures/${user}/${pad(g)}/${pad(r + 1)}.txt`, text: recordingText(s) });
    });
  }
  if (!files.length) {
    say("nothing recorded yet", true);
    return;
  }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(zipFiles(files));
  link.download = `my-gestures-${user}.zip`;
  document.body.append(link);
  link.click();
  link.remove();
  // personalize.py adapts on `shots` takes of every gesture and evaluates on the others
  const fewest = Math.min(...GESTURES.map((g) => slots(g).slice(0, repetitions()).filter(Boolean).length));
  say(fewest >= 2
    ? `${files.length} recordings in ${link.download}: python personalize.py ckpt_path=<model> input=${link.download} shots=${fewest - 1}`
    : `${files.length} recordings in ${link.download}; personalize.py needs at least 2 takes of every gesture (some have ${fewest})`, fewest < 2);
}

// ---------------------------------------------------------------- recognise view
function showAnswer(answer) {
  const card = $("#answer");
  const gesture = answer.gesture === "unsure" ? answer.best_guess : answer.gesture;
  pictogram($("#answer-pictogram"), gesture);
  $("#answer-pictogram").hidden = gesture > GESTURES.length; // one's own gesture has no pictogram
  const named = answer.name ? ` "${answer.name}"` : "";
  $("#answer-text").textContent =
    answer.gesture === "unsure"
      ? `unsure (best guess ${answer.best_guess}, p=${answer.probability.toFixed(3)})`
      : `gesture ${answer.gesture}${named} (p=${answer.probability.toFixed(3)})`;
  $("#answer-top").textContent = "top 3: " + answer.top3.map((t) => `${t.gesture} (${t.probability.toFixed(3)})`).join(", ");
  card.dataset.gesture = answer.gesture;
  card.hidden = false;
}

function minProbability() {
  const value = Number($("#min-probability").value || 0);
  if (!(value >= 0 && value <= 1)) throw new Error(`min probability ${$("#min-probability").value} is invalid: a number in [0, 1]`);
  return value;
}

async function recogniseToggle() {
  await toggle($("#recognise"), "● One gesture", async (next) => {
    if (!demo.classifier) throw new Error("no classifier loaded: choose export.py's .onnx and its .json");
    next.classifier = demo.classifier;
    next.minProbability = minProbability();
  }, async (done) => {
    if (!usable(done)) return;
    const started = performance.now();
    const probabilities = await done.classifier.probabilities(done.samples);
    const ms = performance.now() - started;
    const answer = { ...done.classifier.answer(probabilities, done.minProbability), samples: done.samples.length, ms };
    demo.answers.push(answer);
    showAnswer(answer);
    say(`classified ${done.samples.length} samples in ${ms.toFixed(1)} ms`);
  });
}

// ---------------------------------------------------------------- a gesture of one's own
const takes = [];

async function takeToggle() {
  await toggle($("#take"), "● Take", async () => {
    if (!demo.classifier) throw new Error("no classifier loaded: choose export.py's .onnx and its .json");
  }, async (done) => {
    if (!usable(done)) return;
    takes.push(done.samples);
    $("#take-count").textContent = `${takes.length} take${takes.length === 1 ? "" : "s"}`;
    say(`take ${takes.length} of "${$("#own-name").value.trim()}" kept (${done.samples.length} samples)`);
  });
}

async function teachOwn() {
  const name = $("#own-name").value.trim();
  try {
    const started = performance.now();
    const gesture = await demo.classifier.teach(name, takes);
    const ms = performance.now() - started;
    demo.taught.push({ gesture, name, takes: takes.length, ms });
    say(`gesture ${gesture} "${name}" taught from ${takes.length} take(s) in ${ms.toFixed(0)} ms: "One gesture" answers it now`);
    takes.length = 0;
    $("#take-count").textContent = "0 takes";
  } catch (err) {
    say(String(err.message || err), true);
  }
}

function showDetection(detection) {
  const item = document.createElement("li");
  item.textContent = `${detection.time_s.toFixed(1)} s: gesture ${detection.gesture} (p=${detection.probability.toFixed(3)})`;
  $("#detections").prepend(item);
  while ($("#detections").children.length > 10) $("#detections").lastElementChild.remove(); // the latest 10
  pictogram($("#live-pictogram"), detection.gesture);
  $("#live-pictogram").hidden = false;
  $("#live-text").textContent = `gesture ${detection.gesture}`;
}

async function liveToggle() {
  await toggle($("#live"), "● Live stream", async (next) => {
    if (!demo.spotter) throw new Error("no spotter loaded: choose a spotter's .onnx and its .json (make stream writes them)");
    await demo.queue; // the last stream's steps first
    const spotter = demo.spotter; // this stream's, whatever is loaded meanwhile
    next.limit = Infinity;
    say("live stream: make gestures; tap again to stop"); // not a previous take's message
    spotter.reset();
    demo.detections = [];
    $("#detections").replaceChildren();
    next.onSample = (t, v) => {
      const row = demo.plot.at(-1);
      demo.queue = demo.queue.then(async () => {
        const started = performance.now();
        const probabilities = await spotter.step(v);
        demo.timings.stepMs.push(performance.now() - started);
        row[3] = 1 - probabilities[0];
        const found = spotter.decide(probabilities);
        if (found) {
          const detection = { ...found, time_s: found.sample / next.rateHz };
          demo.detections.push(detection);
          showDetection(detection);
        }
      }).catch((err) => say(String(err.message || err), true));
    };
  }, async () => {
    await demo.queue;
    say(`live stream stopped: ${demo.detections.length} gesture(s) detected`);
  });
}

// ---------------------------------------------------------------- plot
function plotSample(v, p) {
  demo.plot.push([...v, p]);
  if (demo.plot.length > 90) demo.plot.shift();
  requestAnimationFrame(drawPlot);
}

function drawPlot() {
  const canvas = $("#plot");
  const g = canvas.getContext("2d");
  const { width, height } = canvas;
  g.clearRect(0, 0, width, height);
  const x = (i) => (i / 89) * width;
  const y = (a) => height / 2 - (a / 20) * (height / 2); // ±20 m/s²
  // the axes, before any motion: acceleration at 0 and ±10 m/s², the last 10 s from left to right
  g.strokeStyle = "#ddd";
  g.fillStyle = "#888";
  g.font = "11px system-ui, sans-serif";
  for (const a of [-10, 0, 10]) {
    g.beginPath();
    g.moveTo(0, y(a));
    g.lineTo(width, y(a));
    g.stroke();
    g.fillText(`${a > 0 ? "+" : ""}${a} m/s²`, 4, y(a) - 3);
  }
  g.fillText("last 10 s →", width - 70, height - 4);
  ["#d62728", "#2ca02c", "#1f77b4"].forEach((color, axis) => {
    g.strokeStyle = color;
    g.beginPath();
    demo.plot.forEach((row, i) => (i ? g.lineTo(x(i), y(row[axis])) : g.moveTo(x(i), y(row[axis]))));
    g.stroke();
  });
  g.strokeStyle = "#000";
  g.beginPath();
  demo.plot.forEach((row, i) => {
    if (row[3] !== null) g.lineTo(x(i), height - row[3] * height);
  });
  g.stroke();
}

// ---------------------------------------------------------------- wiring
function showView(name) {
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  for (const tab of document.querySelectorAll("nav button")) tab.classList.toggle("active", tab.dataset.view === name);
}

function wire() {
  for (const tab of document.querySelectorAll("nav button")) tab.addEventListener("click", () => showView(tab.dataset.view));
  $("#record").addEventListener("click", recordToggle);
  $("#download").addEventListener("click", download);
  $("#repetitions").addEventListener("change", () => {
    demo.slot = nextEmpty() || { gesture: 1, repetition: 0 };
    showRecordView();
  });
  $("#recognise").addEventListener("click", recogniseToggle);
  $("#take").addEventListener("click", takeToggle);
  $("#teach").addEventListener("click", () => (demo.busy = teachOwn()));
  $("#live").addEventListener("click", liveToggle);
  $("#invert").addEventListener("change", (e) => (accelerometer.invert = e.target.checked));
  $("#choose").addEventListener("change", async (e) => {
    try {
      if (capture !== null) throw new Error("stop the running recording before loading a model");
      await loadChosen([...e.target.files]);
    } catch (err) {
      say(String(err.message || err), true);
    }
    e.target.value = "";
  });
  showRecordView();
  showView(location.hash === "#recognise" ? "recognise" : "record");
  drawPlot(); // its axes before motion arrives
}

// A desktop has no motion sensor: say so in one line, with the way to a phone and the QR code of
// its address (make demo's server makes it: connect.json), until a reading arrives (a phone's
// first reading hides it)
const SENSOR_WAIT_MS = 1500;
async function checkSensor() {
  const note = $("#sensor");
  if (accelerometer.sensed) {
    note.hidden = true;
    return;
  }
  const card = await fetch("connect.json")
    .then((answer) => (answer.ok ? answer.json() : null))
    .catch(() => null);
  const address = new URL(card ? card.url : location.href);
  const local = ["localhost", "127.0.0.1"].includes(address.hostname);
  const port = address.port || (address.protocol === "https:" ? "443" : "80");
  const how = local
    ? `on a phone: after adb reverse tcp:${port} tcp:${port} (USB), scan the code or open ${address.origin}/; over Wi-Fi, serve it over https (make demo DEMO_HOST=0.0.0.0 with a certificate, docs/demo.md)`
    : `on a phone: scan the code or open ${address.href}`;
  const line = document.createElement("span");
  line.textContent = `No motion sensor here: this page records a phone's accelerometer. Open it ${how}.`;
  note.replaceChildren(line);
  if (card && card.svg) {
    const code = document.createElement("img");
    code.src = URL.createObjectURL(new Blob([card.svg], { type: "image/svg+xml" }));
    code.alt = `QR code of ${card.url}`;
    code.className = "qr";
    note.append(code);
  }
  if (!accelerometer.sensed) note.hidden = false;
  accelerometer.listen(() => (note.hidden = true));
}

wire();
setTimeout(checkSensor, SENSOR_WAIT_MS);
demo.ready = loadDefaults()
  .then(() => say(demo.classifier || demo.spotter ? "ready" : "no default model here: choose one under Models"))
  .catch((err) => say(String(err.message || err), true));
