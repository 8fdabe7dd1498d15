// The exported models on onnxruntime-web (WebAssembly, one thread, no network): export.py's
// classifier (accel [1, T, 3] + lengths -> calibrated probabilities) and the stream spotter's step
// model (samples, window, state in; probabilities, window, state out), each with its JSON sidecar.
import * as ort from "./ort/ort.wasm.min.mjs";

ort.env.wasm.numThreads = 1; // no SharedArrayBuffer needed, as on a phone
ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;

export const SPOTTER_FORMAT = "gesture_rnn spotter step";
export const UNSURE = "unsure";

export function kindOf(sidecar) {
  if (sidecar && sidecar.format === SPOTTER_FORMAT) return "spotter";
  if (sidecar && Array.isArray(sidecar.class_index_to_gesture)) return "classifier";
  throw new Error("the sidecar is neither export.py's (class_index_to_gesture) nor a spotter's");
}

async function session(bytes, label) {
  try {
    // the graph as exported, as every Python runtime of the project runs it
    // (gesture_rnn/deploy/runtime.py GRAPH_OPTIMIZATION): one model, one answer
    return await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "disabled" });
  } catch (err) {
    throw new Error(`${label} is not an ONNX model onnxruntime-web can run (${String(err.message || err).split("\n")[0]})`);
  }
}

const isCount = (n) => Number.isInteger(n) && n >= 1;

// What an exported model says about itself (gesture_rnn/deploy/runtime.py write_truth): the JSON
// in its ONNX metadata entry "gesture_rnn" (ModelProto field 14: key 1, value 2), read from the
// protobuf bytes; null for a model exported before it carried it.
export function modelTruth(bytes) {
  const data = bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes);
  let at = 0;
  const varint = (end) => {
    let value = 0;
    for (let shift = 0; at < end && shift < 64; shift += 7) {
      const byte = data[at++];
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    throw new Error("not an ONNX model");
  };
  const fields = (end, visit) => {
    while (at < end) {
      const tag = varint(end);
      const [field, wire] = [Math.floor(tag / 8), tag % 8];
      if (wire === 0) varint(end);
      else if (wire === 1) at += 8;
      else if (wire === 5) at += 4;
      else if (wire === 2) {
        const length = varint(end);
        visit(field, at, at + length);
        at += length;
      } else throw new Error("not an ONNX model");
    }
  };
  let truth = null;
  fields(data.length, (field, start, end) => {
    if (field !== 14) return;
    const entry = {};
    const saved = at;
    at = start;
    fields(end, (key, from, to) => { entry[key] = new TextDecoder().decode(data.subarray(from, to)); });
    at = saved;
    if (entry[1] === "gesture_rnn") truth = JSON.parse(entry[2]);
  });
  return truth;
}

// the sidecar's fields equal the model's own (predict.py's check_truth): else a sidecar copied
// from another model, or edited, would relabel every answer
function checkTruth(bytes, sidecar, fields, name) {
  const truth = modelTruth(bytes);
  if (truth === null) return;
  for (const field of fields) {
    if (field in truth && !deepEqual(truth[field], sidecar[field])) {
      throw new Error(`${name}: its sidecar's ${field} is not the model's own: the sidecar is not this model's`);
    }
  }
}

function deepEqual(a, b) {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  if (a && typeof a === "object") {
    return b && typeof b === "object" && !Array.isArray(b) && Object.keys(a).length === Object.keys(b).length
      && Object.keys(a).every((k) => deepEqual(a[k], b[k]));
  }
  return a === b;
}

function names(session) {
  return [...session.inputNames].sort().join(",");
}

const MIN_TAKE_SAMPLES = 5; // teach.py's: shorter is a tap of Record/Stop, not a gesture

function squaredDistance(a, b) {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += (a[i] - b[i]) ** 2;
  return sum;
}

// what export.py teachable=true adds: a features output and the known gestures' prototypes
function teachingOf(sidecar, session) {
  const teaching = sidecar.teaching;
  if (!teaching || !session.outputNames.includes("features")) return null;
  const { known, sharpness, features } = teaching;
  if (!Array.isArray(known) || !known.length || !known.every((k) => Array.isArray(k) && k.length === features) || !(sharpness > 0)) {
    throw new Error("the sidecar's teaching needs known prototypes of its features' size and a sharpness > 0");
  }
  return { known, sharpness, features };
}

export class Classifier {
  // checked as predict.py checks an export: the sidecar's fields, the model's inputs, and one
  // output per gesture (a probe recording), before it replaces the loaded classifier
  static async load(bytes, sidecar, name = "the classifier") {
    if (kindOf(sidecar) !== "classifier") throw new Error(`${name}: its sidecar is a spotter's`);
    const model = new Classifier();
    model.name = name;
    model.sidecar = sidecar;
    model.gestures = sidecar.class_index_to_gesture.map(Number);
    model.rateHz = Number(sidecar.sampling_rate_hz ?? 9);
    if (!model.gestures.length || !model.gestures.every(Number.isInteger) || new Set(model.gestures).size !== model.gestures.length) {
      throw new Error(`${name}: the sidecar's class_index_to_gesture must name each gesture once`);
    }
    if (!(model.rateHz >= 1 && model.rateHz <= 100)) throw new Error(`${name}: sampling_rate_hz ${sidecar.sampling_rate_hz} is not a rate in [1, 100] Hz`);
    model.session = await session(bytes, name);
    checkTruth(bytes, sidecar, ["class_index_to_gesture", "normalization", "temperature"], name);
    if (names(model.session) !== "accel,lengths") throw new Error(`${name}: inputs ${names(model.session)}, not export.py's accel,lengths`);
    model.taught = []; // gestures of one's own: {gesture, name, prototype}
    model.teaching = teachingOf(sidecar, model.session);
    const outputs = (await model.probabilities([[0, 0, 9.8], [0, 0, 9.8]])).length;
    if (outputs !== model.gestures.length) throw new Error(`${name}: ${outputs} outputs, but its sidecar names ${model.gestures.length} gestures`);
    return model;
  }

  async run(samples) {
    const accel = new ort.Tensor("float32", Float32Array.from(samples.flat()), [1, samples.length, 3]);
    const lengths = new ort.Tensor("int64", BigInt64Array.from([BigInt(samples.length)]), [1]);
    const out = await this.session.run({ accel, lengths });
    return { probabilities: out[this.session.outputNames[0]].data, features: out.features ? out.features.data : null };
  }

  // samples: [[x, y, z], ...] -> probabilities (Float32Array, one per gesture, taught ones last)
  async probabilities(samples) {
    const { probabilities, features } = await this.run(samples);
    return this.taught.length ? this.withTaught(probabilities, features) : probabilities;
  }

  // gesture_rnn/models/teach.py TaughtHead, on the model's probabilities: a taught gesture's logit
  // is the top logit plus sharpness x (nearest known - taught) / (nearest known + taught) in
  // squared distances of the features, so its probability is the top one's times exp(that / T)
  withTaught(probabilities, features) {
    const { known, sharpness } = this.teaching;
    const temperature = Number(this.sidecar.temperature);
    const nearestKnown = Math.min(...known.map((prototype) => squaredDistance(features, prototype)));
    const top = Math.max(...probabilities);
    const taught = this.taught.map(({ prototype }) => {
      const d = squaredDistance(features, prototype);
      return top * Math.exp((sharpness * (nearestKnown - d)) / Math.max(nearestKnown + d, 1e-12) / temperature);
    });
    const all = [...probabilities, ...taught];
    const total = all.reduce((a, b) => a + b, 0);
    return Float32Array.from(all, (p) => p / total);
  }

  // teach.py's gesture of one's own, here: the mean features of its takes (nothing leaves the
  // page); refused as teach.py refuses. Returns the gesture's number (21, 22, ...).
  async teach(name, takes) {
    if (!this.teaching) throw new Error(`${this.name} cannot be taught: export it with export.py teachable=true (make demo does)`);
    if (!name) throw new Error("name the gesture first");
    if (this.taught.some((t) => t.name === name)) throw new Error(`"${name}" is taught already: choose another name`);
    if (!takes.length) throw new Error(`the gesture "${name}" has no takes: record at least one`);
    const seen = new Map();
    takes.forEach((take, i) => {
      if (take.length < MIN_TAKE_SAMPLES) throw new Error(`take ${i + 1} is not a gesture: ${take.length} sample(s) (at least ${MIN_TAKE_SAMPLES})`);
      const key = JSON.stringify(take);
      if (seen.has(key)) throw new Error(`takes ${seen.get(key)} and ${i + 1} of "${name}" are copies of one another: record each anew`);
      seen.set(key, i + 1);
    });
    const prototype = new Float64Array(this.teaching.features);
    for (const take of takes) {
      const { features } = await this.run(take);
      features.forEach((v, i) => (prototype[i] += v / takes.length));
    }
    const gesture = Math.max(...this.gestures) + 1;
    this.taught.push({ gesture, name, prototype });
    this.gestures.push(gesture);
    return gesture;
  }

  nameOf(gesture) {
    const taught = this.taught.find((t) => t.gesture === gesture);
    return taught ? taught.name : null;
  }

  // predict.py's answer: the top gesture, or "unsure" (with the best guess) below minProbability,
  // compared as predict.py compares it, at 6 decimals
  answer(probabilities, minProbability = 0, topK = 3) {
    const order = [...probabilities.keys()].sort((a, b) => probabilities[b] - probabilities[a] || a - b);
    const top = order.slice(0, topK).map((i) => ({ gesture: this.gestures[i], probability: probabilities[i] }));
    if (Math.round(top[0].probability * 1e6) / 1e6 < minProbability) {
      return { gesture: UNSURE, best_guess: top[0].gesture, probability: top[0].probability, top3: top };
    }
    return { ...top[0], name: this.nameOf(top[0].gesture), top3: top };
  }
}

export class Spotter {
  // checked like the classifier: the sidecar's sizes and rule, the step model's inputs, and one
  // probability per class (a probe step), before it replaces the loaded spotter
  static async load(bytes, sidecar, name = "the spotter") {
    if (kindOf(sidecar) !== "spotter") throw new Error(`${name}: its sidecar is a classifier's`);
    const model = new Spotter();
    model.name = name;
    model.sidecar = sidecar;
    model.vocabulary = Array.isArray(sidecar.vocabulary) ? sidecar.vocabulary.map(Number) : [];
    model.kernel = Number(sidecar.kernel);
    model.hidden = Number(sidecar.hidden);
    model.rule = sidecar.rule || {};
    const { threshold, hold, refractory } = model.rule;
    if (!model.vocabulary.length || !model.vocabulary.every(Number.isInteger) || !isCount(model.kernel) || !isCount(model.hidden)
        || !(threshold > 0 && threshold <= 1) || !isCount(hold) || !(Number.isInteger(refractory) && refractory >= 0)) {
      throw new Error(`${name}: the sidecar needs vocabulary, kernel, hidden and rule {threshold in (0, 1], hold, refractory}`);
    }
    model.session = await session(bytes, name);
    checkTruth(bytes, sidecar, ["vocabulary", "kernel", "hidden", "learned_non_target", "rule"], name);
    if (names(model.session) !== "accel,state,window") throw new Error(`${name}: inputs ${names(model.session)}, not a spotter step's accel,state,window`);
    model.reset();
    let outputs;
    try {
      outputs = (await model.step([0, 0, 9.8])).length;
    } catch (err) {
      throw new Error(`${name}: a step fails with its sidecar's sizes (${String(err.message || err).split("\n")[0]})`);
    }
    if (outputs !== 1 + model.vocabulary.length) throw new Error(`${name}: ${outputs} outputs, but its sidecar names ${model.vocabulary.length} gestures and "no gesture"`);
    model.reset();
    return model;
  }

  reset() {
    this.window = null;
    this.state = new ort.Tensor("float32", new Float32Array(this.hidden), [1, 1, this.hidden]);
    this.decision = { run: 0, previous: -1, quietUntil: -1, t: -1 };
  }

  // one sample [x, y, z] -> its probabilities ("no gesture", then the vocabulary)
  async step(sample) {
    if (this.window === null) { // the stream was at its first sample before it began
      const first = Array(this.kernel - 1).fill(sample).flat();
      this.window = new ort.Tensor("float32", Float32Array.from(first), [1, this.kernel - 1, 3]);
    }
    const accel = new ort.Tensor("float32", Float32Array.from(sample), [1, 1, 3]);
    const out = await this.session.run({ accel, window: this.window, state: this.state });
    this.window = out.next_window;
    this.state = out.next_state;
    return out.probabilities.data;
  }

  // streaming/decisions.py:detect, one sample at a time: a gesture whose probability holds at or
  // above the threshold for `hold` samples, then nothing for `refractory` samples
  decide(probabilities, threshold = this.rule.threshold) {
    const d = this.decision;
    d.t += 1;
    let best = 0;
    for (let k = 1; k < probabilities.length - 1; k += 1) {
      if (probabilities[k + 1] > probabilities[best + 1]) best = k;
    }
    const p = probabilities[best + 1];
    const above = p >= Math.fround(threshold); // in float32, as decisions.py compares
    d.run = above && best === d.previous ? d.run + 1 : above ? 1 : 0;
    d.previous = above ? best : -1;
    if (d.run >= this.rule.hold && d.t > d.quietUntil) {
      d.quietUntil = d.t + this.rule.refractory;
      d.run = 0;
      return { sample: d.t, gesture: this.vocabulary[best], probability: p };
    }
    return null;
  }
}
