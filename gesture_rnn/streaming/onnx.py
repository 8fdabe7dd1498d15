"""The spotter as an ONNX step model — the next samples (one, or a few a device buffered), the
history window and the GRU state in; their probabilities, the new window and the new state out —
with a JSON sidecar (vocabulary, decision rule, sizes). ``OnnxSpotter`` runs it on onnxruntime and
numpy alone, as a watch companion app would: no torch, no Lightning.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from gesture_rnn.errors import DataError
from gesture_rnn.streaming.decisions import DecisionRule, rule_from
from gesture_rnn.utils.atomic import atomic_write, write_text_atomically

FORMAT = "gesture_rnn spotter step"


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


def export_spotter(net: Any, rule: DecisionRule, path: Path, int8: bool = False) -> None:
    """``path`` (.onnx) and its sidecar, from a ``GestureSpotter``; with ``int8`` its weights
    stored as int8 (``deploy/quantize.py``, as ``export.py quantize=int8``)."""
    import torch

    class Step(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, accel, window, state):
            logits, window, state = self.net.step(accel, window, state)
            return self.net.fold(torch.softmax(logits, dim=2)), window, state

    from gesture_rnn.deploy.export import ONNX_OPSET
    from gesture_rnn.deploy.quantize import SCHEME, quantize_weights_int8
    from gesture_rnn.deploy.runtime import SPOTTER_TRUTH, write_truth

    net = net.eval()
    example = (torch.zeros(1, 2, 3), *net.initial_state(torch.zeros(1, 3)))
    exported, partial = path.with_name(f".{path.name}.float"), path.with_name(f".{path.name}.partial")
    sidecar = {
        "format": FORMAT,
        **net.settings(),
        "rule": asdict(rule),
        "quantization": SCHEME if int8 else None,
    }
    try:
        with warnings.catch_warnings(), atomic_write(exported, "wb", "ONNX spotter") as handle:
            warnings.simplefilter("ignore")  # the exporter's tracing chatter
            torch.onnx.export(
                Step().eval(), example, handle, input_names=["accel", "window", "state"],
                output_names=["probabilities", "next_window", "next_state"], opset_version=ONNX_OPSET,
                dynamic_axes={"accel": {1: "samples"}, "probabilities": {1: "samples"}},
                dynamo=False,  # as deploy/export.py: the TorchScript-based exporter
            )  # fmt: skip
        if int8:
            quantize_weights_int8(exported, partial)
        else:
            exported.replace(partial)
        write_truth(partial, {k: sidecar[k] for k in SPOTTER_TRUTH})  # what its answers depend on
        partial.replace(path)
    finally:
        exported.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
    write_text_atomically(sidecar_path(path), json.dumps(sidecar, indent=1) + "\n", "spotter sidecar")


SIDECAR_FIELDS = ("format", "vocabulary", "kernel", "hidden", "rule")


def check_sidecar(sidecar: dict, session: Any, where: str) -> tuple[list[int], int, int]:
    """(vocabulary, kernel, hidden) of an exported spotter's sidecar, checked against the model it
    sits beside: every field present, gestures distinct in 1..20, sizes that fit the model's
    inputs and outputs (a classifier's model under a spotter's sidecar fails here) — else a
    DataError naming the file and the field."""
    from gesture_rnn.data.facts import GESTURES

    if missing := [f for f in SIDECAR_FIELDS if f not in sidecar]:
        raise DataError(f"{where}: its sidecar lacks {missing} (export.py writes them)")
    vocabulary, kernel, hidden = sidecar["vocabulary"], sidecar["kernel"], sidecar["hidden"]
    if (
        not isinstance(vocabulary, list)
        or not vocabulary
        or not all(isinstance(g, int) and not isinstance(g, bool) and g in GESTURES for g in vocabulary)
        or len(set(vocabulary)) != len(vocabulary)
    ):
        raise DataError(
            f"{where}: its sidecar's vocabulary={vocabulary!r:.80} is not distinct gestures of 1..20"
        )
    for name, value in (("kernel", kernel), ("hidden", hidden)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DataError(f"{where}: its sidecar's {name}={value!r:.40} is not an integer >= 1")
    inputs = {i.name: i.shape for i in session.get_inputs()}
    outputs = [o.shape for o in session.get_outputs()]
    if set(inputs) != {"accel", "window", "state"} or len(outputs) != 3:
        raise DataError(f"{where}: the model's inputs {sorted(inputs)} are not a spotter's step model "
                        "(accel, window, state): a classifier is read with onnx=, not spotter=")  # fmt: skip
    learned = sidecar.get("learned_non_target") or []
    expected = {"window": [1, kernel - 1, 3], "state": [1, 1, hidden]}
    for name, shape in expected.items():
        if [d if isinstance(d, int) else s for d, s in zip(inputs[name], shape, strict=False)] != shape:
            raise DataError(f"{where}: the model's {name} input is {inputs[name]}, its sidecar says {shape} "
                            "(kernel, hidden): the sidecar is not this model's")  # fmt: skip
    classes = outputs[0][-1]
    if (
        isinstance(classes, int)
        and classes != 1 + len(vocabulary)
        and classes != 1 + len(vocabulary) + len(learned)
    ):
        raise DataError(
            f"{where}: the model has {classes} outputs, its sidecar's vocabulary {len(vocabulary)} "
            "gestures (+ no gesture): the sidecar is not this model's"
        )
    return list(vocabulary), kernel, hidden


class OnnxSpotter:
    """An exported spotter, stepped one sample at a time."""

    def __init__(self, path: Path) -> None:
        from gesture_rnn.deploy.runtime import SPOTTER_TRUTH, check_truth, ort_session

        try:
            sidecar = json.loads(sidecar_path(path).read_text())
            if sidecar.get("format") != FORMAT:
                raise ValueError(f"its sidecar is not a {FORMAT} sidecar")
            self.session = ort_session(path, threads=1)
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"spotter={path} is not an exported spotter with its sidecar ({err})") from None
        except Exception as err:  # onnxruntime's own errors: a file that is not a model
            reason = str(err).strip().splitlines()[0][:160]
            raise DataError(f"spotter={path} is not an exported spotter ({reason})") from None
        self.vocabulary, self.kernel, self.hidden = check_sidecar(sidecar, self.session, f"spotter={path}")
        self.rule = rule_from(sidecar["rule"], f"spotter={path}")
        check_truth(self.session, sidecar, SPOTTER_TRUTH, f"spotter={path}")

    def probabilities(self, samples: np.ndarray, chunk: int = 1) -> np.ndarray:
        """[samples, 1 + vocabulary], stepping through ``samples`` [N, 3] from the first, ``chunk``
        samples per call (a device that buffers a few samples pays onnxruntime's per-call cost
        once per chunk; the numbers are the same)."""
        samples = np.asarray(samples, dtype=np.float32)
        window = np.repeat(samples[:1], self.kernel - 1, axis=0)[None]
        state = np.zeros((1, 1, self.hidden), dtype=np.float32)
        out = np.empty((len(samples), 1 + len(self.vocabulary)), dtype=np.float32)
        for t in range(0, len(samples), chunk):
            out[t : t + chunk], window, state = self.step(samples[t : t + chunk], window, state)
        return out

    def step(self, samples: np.ndarray, window: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, ...]:
        """The next samples [T, 3] -> (probabilities [T, 1 + vocabulary], window, state)."""
        probabilities, window, state = self.session.run(
            None, {"accel": samples[None], "window": window, "state": state}
        )
        return probabilities[0], window, state


def export_spotter_checkpoint(cfg: Any, source: Path, fmt: str, quantize: str | None) -> Path:
    """A spotter's checkpoint as its ONNX step model with the sidecar (vocabulary, decision rule,
    sizes) that ``predict.py spotter=<.onnx>`` and the wearer's page read."""
    from gesture_rnn.deploy.runtime import describe_file, export_target
    from gesture_rnn.errors import ConfigError
    from gesture_rnn.streaming.checkpoint import load_spotter
    from gesture_rnn.utils.atomic import storage_error

    if fmt != "onnx":
        raise ConfigError(f"format={fmt}: a spotter is exported as its ONNX step model (format=onnx)")
    target = export_target(cfg.get("out"), source, ".onnx", quantize)
    if target.is_dir():
        raise ConfigError(
            f"out={target} is a folder: name the model file, e.g. out={target / 'spotter.onnx'}"
        )
    net, rule = load_spotter(source)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        export_spotter(net, rule, target, int8=quantize == "int8")
    except OSError as err:
        raise storage_error(err, "ONNX spotter", target) from None
    print(f"  onnx step model  {describe_file(target, quantize)}\n  sidecar          {sidecar_path(target)}")
    return target
