// The phone's accelerometer at the dataset's rate. DeviceMotion's accelerationIncludingGravity is
// in m/s² with gravity, as the dataset's watch recorded it; events come at the browser's rate
// (often 60 Hz), so each axis is interpolated linearly at fixed ticks of 1000 / rate ms from the
// first event. An event that falls on a tick gives its own values: a recording replayed at its own
// sample times (with events in between) comes back sample for sample.

export const MAX_GAP_MS = 1000; // as a stream file's longest pause (gesture_rnn/data/streams.py)

export class Resampler {
  constructor(rateHz, onSample) {
    this.period = 1000 / rateHz;
    this.onSample = onSample;
    this.reset();
  }

  reset() {
    this.start = null;
    this.previous = null;
    this.emitted = 0;
  }

  // false when the events stopped for longer than MAX_GAP_MS: nothing is made up for the gap
  push(t, values) {
    if (!Number.isFinite(t)) return true;
    if (this.start === null) this.start = t;
    if (this.previous !== null && t <= this.previous[0]) return true; // out of order or repeated: skip
    if (this.previous !== null && t - this.previous[0] > MAX_GAP_MS) return false;
    for (;;) {
      const tick = this.start + this.emitted * this.period;
      if (tick > t) break;
      let sample = values;
      if (tick < t && this.previous !== null) {
        const [before, old] = this.previous;
        const w = (tick - before) / (t - before);
        sample = old.map((a, i) => a + w * (values[i] - a));
      }
      this.emitted += 1;
      this.onSample(tick - this.start, sample);
    }
    this.previous = [t, values];
    return true;
  }
}

// One listener for the page: forwards [x, y, z] (sign-flipped when asked: iOS Safari reports
// the opposite sign to Android and to the dataset) with the event's time stamp in ms.
export class Accelerometer {
  constructor() {
    this.listeners = new Set();
    this.invert = false;
    this.sensed = false; // a reading has arrived: this device has a motion sensor
    window.addEventListener("devicemotion", (event) => this.handle(event));
  }

  handle(event) {
    const a = event.accelerationIncludingGravity;
    if (!a || ![a.x, a.y, a.z].every(Number.isFinite)) return; // a sensor that has no reading yet
    this.sensed = true;
    const sign = this.invert ? -1 : 1;
    const values = [sign * a.x, sign * a.y, sign * a.z];
    for (const listener of this.listeners) listener(event.timeStamp, values);
  }

  // iOS asks the wearer once, from a tap; elsewhere there is nothing to ask
  async permit() {
    const ask = window.DeviceMotionEvent && DeviceMotionEvent.requestPermission;
    if (typeof ask === "function") {
      const answer = await ask.call(DeviceMotionEvent);
      if (answer !== "granted") throw new Error("motion sensors: permission " + answer);
    }
    if (!window.isSecureContext) {
      throw new Error("motion sensors need a secure context: open the page over https or on localhost");
    }
  }

  listen(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
