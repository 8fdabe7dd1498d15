"""``predict.py stream=<file>``: the gestures in a continuous recording, one line per detection.

Two ways to read a stream:

- a spotter (``train.py experiment=spotter``): ``ckpt_path=`` / ``model_uri=`` its checkpoint or
  registered model, or ``spotter=<file>`` (a checkpoint, an older ``.pt``, or its exported ``.onnx``
  step model, which runs sample by sample on onnxruntime without torch): the per-sample spotter
  with its "no gesture" class and the decision rule chosen with it; ``min_probability`` replaces
  the threshold.
- ``ckpt_path=`` / ``model_uri=``: any classifier of cut recordings — calibrated, personalised, an
  ensemble — read through a sliding window (``gesture_rnn.streaming.window``); ``min_probability``
  (default ``DEFAULT_THRESHOLD``) is the threshold, gestures outside ``vocabulary`` count as none.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from gesture_rnn.data.facts import GESTURES, gesture_label
from gesture_rnn.errors import ConfigError

DEFAULT_THRESHOLD = 0.9


def window_vocabulary(value: object) -> list[int]:
    """``vocabulary=``: distinct gesture numbers 1-20 (one alone is a list of one), null = all."""
    if value is None:
        return list(GESTURES)
    listed = [value] if not isinstance(value, Sequence) or isinstance(value, str) else list(value)
    valid = [g for g in listed if isinstance(g, int) and not isinstance(g, bool) and g in GESTURES]
    if not listed or len(valid) != len(listed) or len(set(valid)) != len(valid):
        raise ConfigError(
            f"vocabulary={value!r} is invalid: it must list distinct gestures 1..20, e.g. "
            "vocabulary=[5,6,7], or be left out (all 20)"
        )
    return valid


def predict_stream(cfg: DictConfig) -> list[dict]:
    """The gestures detected in ``cfg.stream`` (time, gesture, probability); predict.py prints them."""
    from dataclasses import replace

    from gesture_rnn.data.streams import read_stream
    from gesture_rnn.streaming.checkpoint import is_spotter_file, load_spotter
    from gesture_rnn.streaming.decisions import DecisionRule, detect
    from gesture_rnn.tracking.registry import model_checkpoint

    if cfg.get("input"):
        raise ConfigError("give input= (recordings of one gesture) or stream= (a continuous one), not both")
    if cfg.get("onnx"):
        raise ConfigError("stream= reads with spotter= (.pt or exported .onnx) or a checkpoint, not onnx=")
    if cfg.get("spotter") and (cfg.get("ckpt_path") or cfg.get("model_uri")):
        raise ConfigError("give spotter= or a classifier (ckpt_path= / model_uri=) for stream=, not both")
    if not (cfg.get("spotter") or cfg.get("ckpt_path") or cfg.get("model_uri")):
        raise ConfigError(
            "stream= needs a model: spotter=<file>, or ckpt_path= / model_uri= (a spotter's or a "
            "classifier's)"
        )
    vocabulary = window_vocabulary(cfg.get("vocabulary"))
    samples, times = read_stream(Path(cfg.stream))
    threshold = cfg.get("min_probability")
    spotter_file = cfg.get("spotter")
    is_spotter = bool(spotter_file) or is_spotter_file(checkpoint := model_checkpoint(cfg)[0])
    if is_spotter and cfg.get("vocabulary") is not None:
        raise ConfigError(
            "vocabulary= applies to a classifier read through a window; a spotter announces the "
            "gestures it was trained for: leave vocabulary= out"
        )
    if spotter_file and str(spotter_file).endswith(".onnx"):  # onnxruntime, sample by sample
        from gesture_rnn.streaming.onnx import OnnxSpotter

        spotter = OnnxSpotter(Path(spotter_file))
        probabilities, vocabulary, rule = spotter.probabilities(samples), spotter.vocabulary, spotter.rule
    elif is_spotter:
        net, rule = load_spotter(spotter_file or checkpoint)
        probabilities, vocabulary = net.probabilities(samples), net.vocabulary
    else:  # a classifier of cut recordings
        from gesture_rnn.deploy.inference import load_predictor
        from gesture_rnn.streaming.window import window_probabilities

        net = load_predictor(checkpoint, 1, 20.0)
        probabilities = window_probabilities(net, samples, vocabulary)
        rule = DecisionRule(threshold=DEFAULT_THRESHOLD)
    if threshold is not None:
        rule = replace(rule, threshold=float(threshold))
    start = int(times[0])
    results = [
        {
            "time_s": round((int(times[d.sample]) - start) / 1000, 3),
            "time_ms": int(times[d.sample]),
            "gesture": d.gesture,
            "probability": round(float(d.probability), 6),
        }
        for d in detect(probabilities, vocabulary, rule)
    ]
    return results


def format_detection(result: dict) -> str:
    return f"{result['time_s']:.2f} s: {gesture_label(result['gesture'])} (p={result['probability']:.3f})"
