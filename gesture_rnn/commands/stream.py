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

import json
from pathlib import Path

from omegaconf import DictConfig

from gesture_rnn.data.facts import GESTURES
from gesture_rnn.errors import ConfigError

DEFAULT_THRESHOLD = 0.9


def predict_stream(cfg: DictConfig) -> list[dict]:
    """Detect the gestures of ``cfg.stream``; print and return them (time, gesture, probability)."""
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
    samples, times = read_stream(Path(cfg.stream))
    threshold = cfg.get("min_probability")
    if cfg.get("spotter") and str(cfg.spotter).endswith(".onnx"):  # onnxruntime, sample by sample
        from gesture_rnn.streaming.onnx import OnnxSpotter

        spotter = OnnxSpotter(Path(cfg.spotter))
        probabilities, vocabulary, rule = spotter.probabilities(samples), spotter.vocabulary, spotter.rule
    elif cfg.get("spotter") or is_spotter_file(checkpoint := model_checkpoint(cfg)[0]):
        net, rule = load_spotter(cfg.get("spotter") or checkpoint)
        probabilities, vocabulary = net.probabilities(samples), net.vocabulary
    else:  # a classifier of cut recordings
        from gesture_rnn.deploy.inference import load_predictor
        from gesture_rnn.streaming.window import window_probabilities

        net = load_predictor(checkpoint, 1, 20.0)
        vocabulary = [int(g) for g in cfg.get("vocabulary") or GESTURES]
        if unknown := [g for g in vocabulary if g not in GESTURES]:
            raise ConfigError(f"vocabulary={vocabulary} is invalid: gesture {unknown[0]} is not one of 1..20")
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
    for result in results:
        if cfg.get("output") == "json":
            print(json.dumps(result))
        else:
            print(f"{result['time_s']:.2f} s: gesture {result['gesture']} (p={result['probability']:.3f})")
    return results
