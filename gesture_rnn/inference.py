"""A trained network on recordings: class probabilities for a batch, and predict.py's command.

Imports torch but not Lightning: classifying a recording needs the network and nothing else.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from omegaconf import DictConfig, ListConfig

from gesture_rnn.config_checks import Rule, check_rules, is_int, is_number
from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.data.facts import GESTURES
from gesture_rnn.data.recordings import read_recordings
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import load_net
from gesture_rnn.models.nets import GestureNet

OUTPUTS = ("text", "json")
CHUNK = 256  # recordings per forward pass


@torch.inference_mode()
def class_probabilities(net: GestureNet, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The network's calibrated class probabilities for a padded batch, in eval mode (the one
    "predict a batch")."""
    was_training = net.training
    net.eval()
    try:
        device = next(net.parameters()).device
        return net.probabilities(net(accel.to(device), lengths))
    finally:
        net.train(was_training)


UNSURE = "unsure"
MIN_PROBABILITY = Rule(
    "min_probability", "a number in [0, 1] or null", lambda v: v is None or (is_number(v) and 0 <= v <= 1)
)
ROTATIONS = Rule("rotations", "an integer >= 1", lambda v: v is None or (is_int(v) and v >= 1))
ROTATION_DEGREES = Rule(
    "rotation_degrees", "a number in (0, 180]", lambda v: v is None or (is_number(v) and 0 < v <= 180)
)


def load_predictor(ckpt_path: object, rotations: int = 1, rotation_degrees: float = 20.0) -> GestureNet:
    """What predict.py classifies with: one checkpoint's network, or — given several checkpoints
    (``ckpt_path=[a.ckpt,b.ckpt]``) or ``rotations`` > 1 — their calibrated probabilities
    averaged over every checkpoint and rotation (``gesture_rnn.ensembling``)."""
    from gesture_rnn.ensembling import AveragedNet, fixed_rotations

    paths = list(ckpt_path) if isinstance(ckpt_path, list | tuple | ListConfig) else [ckpt_path]
    if not paths:
        raise ConfigError("ckpt_path=[] names no checkpoint: give one, or a list of them to average")
    nets = [load_net(path) for path in paths]
    if len(nets) == 1 and rotations == 1:
        return nets[0]
    return AveragedNet(nets, fixed_rotations(rotations, rotation_degrees))


def predict(
    net: GestureNet, recordings: list[tuple[str, np.ndarray]], top_k: int = 3, min_probability: float = 0.0
) -> list[dict]:
    """One dict per recording: file, gesture (1-20), probability, top3 [{gesture, probability}].
    Below ``min_probability`` the gesture is ``"unsure"`` and ``best_guess`` holds the top one."""
    results = []
    for start in range(0, len(recordings), CHUNK):
        chunk = recordings[start : start + CHUNK]
        probabilities = class_probabilities(net, *pad_sequences([values for _, values in chunk])).cpu()
        best = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        for (name, _), values, indices in zip(chunk, best.values, best.indices, strict=True):
            top = [
                {"gesture": GESTURES[int(i)], "probability": round(float(p), 6)}
                for p, i in zip(values, indices, strict=True)
            ]
            result = {"file": name, **top[0], "top3": top}
            if result["probability"] < min_probability:
                result = {"file": name, "gesture": UNSURE, "best_guess": top[0]["gesture"]}
                result.update(probability=top[0]["probability"], top3=top)
            results.append(result)
    return results


def format_prediction(result: dict) -> str:
    others = ", ".join(f"{t['gesture']} ({t['probability']:.3f})" for t in result["top3"])
    if result["gesture"] == UNSURE:
        guess = f"best guess {result['best_guess']}, p={result['probability']:.3f}"
        return f"{result['file']}: unsure ({guess}); top 3: {others}"
    return f"{result['file']}: gesture {result['gesture']} (p={result['probability']:.3f}); top 3: {others}"


def run_predict(cfg: DictConfig) -> list[dict]:
    """``predict.py``: classify every recording of ``input``; print text or JSON lines."""
    if cfg.get("output") not in OUTPUTS:
        raise ConfigError(f"output={cfg.get('output')!r} is invalid: it must be one of {list(OUTPUTS)}")
    if not cfg.get("input"):
        raise ConfigError("input is required: python predict.py ckpt_path=... input=recording.txt")
    check_rules(cfg, [MIN_PROBABILITY, ROTATIONS, ROTATION_DEGREES])
    threshold = cfg.get("min_probability")
    net = load_predictor(cfg.get("ckpt_path"), cfg.get("rotations") or 1, cfg.get("rotation_degrees") or 20.0)
    recordings = list(read_recordings(cfg.input))
    results = predict(net, recordings, top_k=int(cfg.get("top_k", 3)), min_probability=float(threshold or 0))
    try:
        for result in results:
            print(json.dumps(result) if cfg.output == "json" else format_prediction(result))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (``| head -1``) has what it wanted: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return results
