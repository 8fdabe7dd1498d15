"""``predict.py``: classify recordings and print text or JSON lines.

Two backends: a checkpoint (``ckpt_path``, PyTorch; a list is an ensemble) or an exported ONNX
model (``onnx=<file>.onnx`` with export.py's sidecar beside it; not ``model=``, which Hydra
reads as the training config group of that name), which runs on onnxruntime and
numpy alone — this module imports neither torch nor Lightning, so a watch companion app or a
server needs only the model file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gesture_rnn.config.rules import Rule, check_rules, is_int, is_number
from gesture_rnn.data.facts import GESTURE_NAMES, gesture_label
from gesture_rnn.data.recordings import read_recordings
from gesture_rnn.errors import ConfigError, StorageError

OUTPUTS = ("text", "json")
CHUNK = 256  # recordings per forward pass
UNSURE = "unsure"
MAX_ROTATIONS = 64  # each is one more forward pass over every recording
RULES = (
    Rule(
        "min_probability", "a number in [0, 1] or null", lambda v: v is None or (is_number(v) and 0 <= v <= 1)
    ),
    Rule(
        "rotations",
        f"an integer in [1, {MAX_ROTATIONS}]",
        lambda v: v is None or (is_int(v) and 1 <= v <= MAX_ROTATIONS),
    ),
    Rule("top_k", "an integer in [1, 20]", lambda v: v is None or (is_int(v) and 1 <= v <= 20)),
    Rule("rotation_degrees", "a number in (0, 180]", lambda v: v is None or (is_number(v) and 0 < v <= 180)),
)


def answers(
    names: list[str],
    probabilities: np.ndarray,
    gestures: list[int],
    top_k: int = 3,
    min_probability: float = 0.0,
    labels: dict[int, str] | None = None,
) -> list[dict]:
    """One dict per recording: file, gesture, probability, top3 [{gesture, probability}], and the
    gesture's ``name`` (``labels``: the dataset's, and a taught model's own). Below
    ``min_probability`` the gesture is ``"unsure"`` and ``best_guess`` holds the top one."""
    labels = GESTURE_NAMES if labels is None else labels
    results = []
    for name, row in zip(names, probabilities, strict=True):
        order = np.argsort(-row, kind="stable")[: min(top_k, len(row))]
        top = [{"gesture": gestures[int(i)], "probability": round(float(row[i]), 6)} for i in order]
        result = {"file": name, **top[0], "name": labels.get(top[0]["gesture"]), "top3": top}
        if result["probability"] < min_probability:
            result = {"file": name, "gesture": UNSURE, "best_guess": top[0]["gesture"], "name": None}
            result.update(probability=top[0]["probability"], top3=top)
        results.append(result)
    return results


def format_prediction(result: dict) -> str:
    others = ", ".join(f"{t['gesture']} ({t['probability']:.3f})" for t in result["top3"])
    if result["gesture"] == UNSURE:
        guess = f"best guess {gesture_label(result['best_guess'])}, p={result['probability']:.3f}"
        return f"{result['file']}: unsure ({guess}); top 3: {others}"
    name, number = result.get("name"), result["gesture"]
    label = f'gesture {number} "{name}"' if name else gesture_label(number)
    return f"{result['file']}: {label} (p={result['probability']:.3f}); top 3: {others}"


def onnx_session(path: object) -> tuple[object, list[int]]:
    """An onnxruntime session for export.py's model and the gestures its outputs stand for
    (from the sidecar ``<file>.json`` beside it; ``onnx_labels`` reads their names)."""
    from gesture_rnn.deploy.runtime import CLASSIFIER_TRUTH, check_truth, ort_session

    model = Path(str(path)).expanduser()
    sidecar = model.with_name(model.name + ".json")
    if not model.is_file():
        raise ConfigError(f"onnx={path} does not exist")
    if not sidecar.is_file():
        raise ConfigError(f"onnx={path}: no sidecar {sidecar.name} beside it (export.py writes both)")
    try:
        metadata = json.loads(sidecar.read_text())
        gestures = [int(g) for g in metadata["class_index_to_gesture"]]
        if metadata.get("format", "onnx") != "onnx":
            raise ValueError(metadata["format"])
        session = ort_session(model)
    except Exception as error:  # a damaged file or another format: one line, not a traceback
        reason = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ConfigError(f"onnx={path} is not an ONNX model written by export.py ({reason})") from None
    check_model_against_sidecar(session, gestures, f"onnx={path}", sidecar.name)
    check_truth(session, metadata, CLASSIFIER_TRUTH, f"onnx={path}")
    return session, gestures


def onnx_labels(path: object) -> dict[int, str]:
    """The dataset's gesture names and an exported taught model's own (its sidecar's)."""
    model = Path(str(path)).expanduser()
    taught = json.loads(model.with_name(model.name + ".json").read_text()).get("taught_gestures") or {}
    return {**GESTURE_NAMES, **{int(g): str(name) for g, name in taught.items()}}


def check_model_against_sidecar(session: object, gestures: list[int], key: str, sidecar: str) -> None:
    """The sidecar names one distinct gesture per model output, and the model takes what
    export.py's models take (accel [batch, time, 3], lengths [batch]): else one line, before any
    recording is read (not an IndexError or an onnxruntime traceback later)."""
    repeated = sorted({g for g in gestures if gestures.count(g) > 1})
    if not gestures or repeated:
        raise ConfigError(
            f"{key}: {sidecar} lists gesture(s) {repeated or '[]'} more than once or none at all"
        )
    inputs = {i.name: i.shape for i in session.get_inputs()}
    named = {o.name: o.shape for o in session.get_outputs()}
    outputs = list(named.values())[:1]  # probabilities; a teachable export adds features after it
    if (
        set(inputs) != {"accel", "lengths"}
        or inputs["accel"][-1] != 3
        or len(named) not in (1, 2)
        or (len(named) == 2 and list(named)[1] != "features")
    ):
        raise ConfigError(
            f"{key}: the model's inputs {sorted(inputs)} and {len(named)} output(s) are not export.py's "
            "(accel [batch, time, 3], lengths [batch] -> probabilities)"
        )
    classes = outputs[0][-1]
    if isinstance(classes, int) and classes != len(gestures):
        raise ConfigError(
            f"{key}: the model has {classes} outputs but {sidecar} names {len(gestures)} gestures"
        )


def onnx_probabilities(session: object, sequences: list[np.ndarray]) -> np.ndarray:
    """[n, classes] from the exported model: zero-padded batches of CHUNK recordings."""
    out = []
    for start in range(0, len(sequences), CHUNK):
        chunk = sequences[start : start + CHUNK]
        lengths = np.array([len(s) for s in chunk], dtype=np.int64)
        accel = np.zeros((len(chunk), int(lengths.max()), 3), dtype=np.float32)
        for row, sequence in enumerate(chunk):
            accel[row, : len(sequence)] = sequence
        out.append(session.run(None, {"accel": accel, "lengths": lengths})[0])
    return np.concatenate(out)


def run_predict(cfg: DictConfig) -> list[dict]:
    """Classify every recording of ``input`` with ``ckpt_path`` or ``onnx``; print each answer."""
    if cfg.get("output") not in OUTPUTS:
        raise ConfigError(f"output={cfg.get('output')!r} is invalid: it must be one of {list(OUTPUTS)}")
    if not cfg.get("input") and not cfg.get("stream"):
        if cfg.get("spotter"):
            raise ConfigError("spotter= reads a continuous recording: give it with stream=<file>")
        raise ConfigError("input is required: python predict.py ckpt_path=... input=recording.txt")
    check_rules(cfg, RULES)
    if sys.stdout is None:  # started with stdout closed (``>&-``): print() would drop every answer
        raise StorageError(
            "standard output is closed: nowhere to print the predictions (redirect it to a file)"
        )
    if cfg.get("stream"):  # a continuous recording: detections, not one answer per recording
        from gesture_rnn.commands.stream import format_detection, predict_stream

        detections = predict_stream(cfg)
        emit(json.dumps(d) if cfg.output == "json" else format_detection(d) for d in detections)
        return detections
    if cfg.get("spotter"):
        raise ConfigError("spotter= reads a continuous recording: give it with stream=<file>")
    if cfg.get("onnx") and (cfg.get("ckpt_path") or cfg.get("model_uri")):
        raise ConfigError("give ckpt_path or model_uri (a checkpoint) or onnx (an exported model), not both")
    rotations, degrees = cfg.get("rotations") or 1, cfg.get("rotation_degrees") or 20.0
    registered = None  # the MLflow model behind model_uri, if that is what answers
    if cfg.get("onnx"):
        if rotations != 1:
            raise ConfigError(
                "rotations need a checkpoint (ckpt_path=...); an ONNX model is classified as exported"
            )
        session, gestures = onnx_session(cfg.onnx)
        labels = onnx_labels(cfg.onnx)
        recordings = list(read_recordings(cfg.input))
        probabilities = onnx_probabilities(session, [values for _, values in recordings])
    else:
        from gesture_rnn.data.facts import GESTURES
        from gesture_rnn.deploy.inference import load_predictor, probabilities_of
        from gesture_rnn.tracking.registry import model_checkpoint

        checkpoint, registered = model_checkpoint(cfg)
        net = load_predictor(checkpoint, rotations, degrees)
        recordings = list(read_recordings(cfg.input))
        probabilities = probabilities_of(net, [values for _, values in recordings], CHUNK)
        labels = {**GESTURE_NAMES, **taught_labels(checkpoint)}
        gestures = GESTURES + sorted(set(labels) - set(GESTURES))
    threshold = float(cfg.get("min_probability") or 0)
    names = [name for name, _ in recordings]
    results = answers(names, probabilities, gestures, int(cfg.get("top_k") or 3), threshold, labels)
    if registered is not None:  # which registered version answered
        results = [{**result, "model": registered.describe()} for result in results]
    emit(json.dumps(result) if cfg.output == "json" else format_prediction(result) for result in results)
    return results


def taught_labels(ckpt_path: object) -> dict[int, str]:
    """A taught checkpoint's own gestures by number (``teach.py``); none for an ensemble."""
    if isinstance(ckpt_path, list | tuple) or not isinstance(ckpt_path, str | Path):
        return {}
    from gesture_rnn.models.checkpoint import read_checkpoint
    from gesture_rnn.models.teach import taught_names

    return taught_names(read_checkpoint(ckpt_path).get("taught"), len(GESTURE_NAMES) + 1)


def emit(lines: Iterable[str]) -> None:
    """Print ``lines`` to standard output, every way out alike (recordings and streams): a reader
    that has what it wanted (``| head -1``) stops the printing quietly; a full device or a closed
    descriptor is one line (exit 2), never a traceback nor a silent loss."""
    try:
        for line in lines:
            print(line)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (``| head -1``) has what it wanted: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError) as err:  # a full device, a closed descriptor: say so
        with contextlib.suppress(OSError, ValueError):  # the unflushed rest goes nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise StorageError(f"{reason}: writing the predictions to standard output") from None
