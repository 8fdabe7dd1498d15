"""A trained network as a file that runs without this project: ONNX or TorchScript, plus a JSON
sidecar with what a deployment needs to know (classes, inputs, sampling rate, data checksum)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from gesture_rnn.data.facts import GESTURES, NUM_CHANNELS, NUM_CLASSES, SAMPLING_RATE_HZ
from gesture_rnn.deploy.runtime import describe_file, export_target, write_truth
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import (
    checkpoint_file,
    data_state,
    net_from_checkpoint,
    read_checkpoint,
    seen_recordings,
)
from gesture_rnn.models.nets import GestureNet
from gesture_rnn.models.teach import SHARPNESS, TaughtHead, known_from_dataset, taught_names
from gesture_rnn.utils.atomic import current_umask, storage_error, write_text_atomically

ONNX_OPSET = 17


class GestureProbabilities(nn.Module):
    """Raw acceleration in, class probabilities out, through the network's padded path.

    ``forward(accel, lengths)``: accel float32 [batch, time, 3] in m/s² (as recorded, padded
    after each sequence's end), lengths int64 [batch]. Without ``lengths`` (MLflow's pyfunc passes
    one tensor) padding rows are NaN and the lengths are counted from them.
    """

    def __init__(self, net: GestureNet) -> None:
        super().__init__()
        self.net = net.eval()

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = (~torch.isnan(accel[..., 0])).sum(dim=1)
            # torch.where, not nan_to_num: the exporter keeps the time axis dynamic with it
            accel = torch.where(torch.isnan(accel), torch.zeros_like(accel), accel)
        return self.net.probabilities(self.net.forward_padded(accel, lengths))


class TeachableProbabilities(nn.Module):
    """``GestureProbabilities`` and, as a second output, what the network's linear head sees: the
    representation the wearer's page teaches a gesture of one's own on (``models.teach``)."""

    def __init__(self, net: GestureNet) -> None:
        super().__init__()
        self.probabilities = exportable(net)
        self.eval()

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        hook = self.probabilities.net.head.register_forward_pre_hook(
            lambda module, args: seen.append(args[0])
        )
        try:
            probabilities = self.probabilities(accel, lengths)
        finally:
            hook.remove()
        return probabilities, seen[0]


def exportable(net: GestureNet) -> GestureProbabilities:
    """The wrapper, after checking the network has a padded path (e.g. not a bidirectional GRU)."""
    net.forward_padded(*example_inputs(net))  # raises ConfigError where there is none
    # in eval mode: torch.onnx.export puts the wrapper back in its own mode afterwards, and a
    # wrapper in training mode would leave the network training (dropout on) after an export
    return GestureProbabilities(net).eval()


def example_inputs(net: GestureNet) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    accel = torch.randn(2, 12, NUM_CHANNELS, generator=generator) * 3 + net.mean
    return accel, torch.tensor([12, 7])


class NanPaddedProbabilities(nn.Module):
    """One input, NaN rows after each sequence's end: the MLflow model's pyfunc convention."""

    def __init__(self, net: GestureNet) -> None:
        super().__init__()
        self.probabilities = exportable(net)
        self.eval()

    def forward(self, accel: torch.Tensor) -> torch.Tensor:
        return self.probabilities(accel)


def nan_padded_example(net: GestureNet) -> torch.Tensor:
    accel, lengths = example_inputs(net)
    example = accel.clone()
    example[1, int(lengths[1]) :] = float("nan")
    return example


def export_onnx(net: GestureNet, path: Path, nan_padded: bool = False, features: bool = False) -> Path:
    """ONNX with dynamic batch and time: inputs (accel, lengths), or with ``nan_padded`` one
    NaN-padded accel (lengths counted inside the graph); with ``features`` a second output,
    ``features`` [batch, d] (``TeachableProbabilities``).

    The TorchScript-based exporter (``dynamo=False``): torch 2.13's dynamo exporter froze the time
    axis to the example's length on the second export in a process (a sweep's second trial)."""
    if nan_padded:
        model, inputs, names = NanPaddedProbabilities(net), (nan_padded_example(net),), ["accel"]
        axes = {"accel": {0: "batch", 1: "time"}}
    else:
        model = TeachableProbabilities(net) if features else exportable(net)
        inputs, names = example_inputs(net), ["accel", "lengths"]
        axes = {"accel": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    outputs = ["probabilities", "features"] if features else ["probabilities"]
    with warnings.catch_warnings():  # the exporter's deprecation and tracing chatter
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            inputs,
            str(path),
            input_names=names,
            output_names=outputs,
            dynamic_axes={**axes, **{name: {0: "batch"} for name in outputs}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return path


def export_torchscript(net: GestureNet, path: Path) -> Path:
    with torch.no_grad():
        traced = torch.jit.trace(exportable(net), example_inputs(net), check_trace=False)
    traced.save(str(path))
    return path


def sidecar_metadata(checkpoint: dict[str, Any], net: GestureNet, source: Path) -> dict[str, Any]:
    """What a deployment needs to know beside the weights (the sidecar JSON)."""
    taught = taught_names(checkpoint.get("taught"), len(GESTURES) + 1)
    return {
        "classes": [f"gesture {g}" for g in GESTURES] + [f"gesture {g}" for g in taught],
        "inputs": {
            "accel": "float32 [batch, time, 3]: x y z acceleration in m/s², as recorded (raw; "
            "normalisation is inside the model), zero-padded after each sequence's end",
            "lengths": "int64 [batch]: real number of time steps of each sequence",
        },
        "output": f"float32 [batch, {NUM_CLASSES + len(taught)}]: class probabilities (softmax of "
        "logits / temperature)",
        # teach.py's gestures: their numbers (class_index_to_gesture) and names
        "taught_gestures": {str(g): name for g, name in taught.items()},
        "sampling_rate_hz": SAMPLING_RATE_HZ,
        "model": {"net": checkpoint["hyper_parameters"]["net"]},
        **classifier_truth(net),
        "data_md5": data_state(checkpoint).get("checksum"),
        "checkpoint": str(source),
    }


def classifier_truth(net: GestureNet) -> dict[str, Any]:
    """What an exported classifier's answers depend on (``runtime.CLASSIFIER_TRUTH``): in its
    sidecar and in its own ONNX metadata."""
    taught = net.head.taught.shape[0] if isinstance(net.head, TaughtHead) else 0
    return {
        "class_index_to_gesture": GESTURES + list(range(len(GESTURES) + 1, len(GESTURES) + 1 + taught)),
        "normalization": {"mean": net.mean.tolist(), "std": net.std.tolist()},
        "temperature": float(net.temperature),
    }


FORMATS = {"onnx": (".onnx", export_onnx), "torchscript": (".pt", export_torchscript)}
QUANTIZE = (None, "int8")


def export_settings(cfg: DictConfig) -> tuple[str, str | None]:
    """(format, quantize) of export.py's config, or a ConfigError naming the key and its choices."""
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is invalid: it must be one of {list(FORMATS)}")
    quantize = cfg.get("quantize")
    if quantize not in QUANTIZE:
        raise ConfigError(f"quantize={quantize!r} is invalid: it must be one of {list(QUANTIZE)}")
    if quantize and fmt != "onnx":
        raise ConfigError(f"quantize={quantize} needs format=onnx (got format={fmt})")
    return fmt, quantize


def teaching_metadata(
    cfg: DictConfig, checkpoint: dict[str, Any], net: GestureNet, fmt: str
) -> dict[str, Any]:
    """With ``teachable=true``: what the wearer's page needs to teach a gesture of one's own
    (the known gestures' prototypes, the rule's sharpness) — the model gets a ``features`` output."""
    if not cfg.get("teachable"):
        return {}
    if fmt != "onnx":
        raise ConfigError(f"teachable=true needs format=onnx (got format={fmt})")
    if isinstance(net.head, TaughtHead):
        raise ConfigError(
            "teachable=true exports a model to teach: give the checkpoint teach.py started from"
        )
    known = known_from_dataset(
        net, seen_recordings(checkpoint), cfg.get("data_path"), cfg.cache_dir, f"ckpt_path={cfg.ckpt_path}"
    )
    return {"known": known.tolist(), "sharpness": SHARPNESS, "features": int(known.shape[1])}


def run_export(cfg: DictConfig) -> Path:
    """``export.py`` for a classifier: the checkpoint as ONNX or TorchScript, with its JSON sidecar."""
    fmt, quantize = export_settings(cfg)
    from gesture_rnn.tracking.registry import model_checkpoint

    path, registered = model_checkpoint(cfg)
    source = checkpoint_file(path)
    checkpoint = read_checkpoint(source)
    net = net_from_checkpoint(checkpoint)
    teaching = teaching_metadata(cfg, checkpoint, net, fmt)
    suffix, export = FORMATS[fmt]
    if teaching:
        export = functools.partial(export_onnx, features=True)
    target = export_target(cfg.get("out"), source, suffix, quantize)
    if target.is_dir():
        raise ConfigError(
            f"out={target} is a folder: name the model file, e.g. out={target / ('model' + suffix)}"
        )
    partial = target.with_name(f".{target.name}.partial")  # never a half-written model at target
    float_partial = partial.with_name(partial.name + ".float")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if quantize:
            from gesture_rnn.deploy.quantize import quantize_weights_int8

            quantize_weights_int8(export(net, float_partial), partial)
        else:
            export(net, partial)
        if fmt == "onnx":  # what the answers depend on, in the model itself
            write_truth(partial, classifier_truth(net))
        os.chmod(partial, 0o666 & ~current_umask())
        partial.replace(target)
    except OSError as err:  # a read-only folder, a full disk
        raise storage_error(err, f"{fmt} model", target) from None
    finally:
        for leftover in (partial, float_partial):
            with contextlib.suppress(OSError):  # a read-only folder refuses even this
                leftover.unlink(missing_ok=True)
    sidecar = target.with_name(target.name + ".json")
    metadata = {**sidecar_metadata(checkpoint, net, source), "format": fmt, "file": target.name}
    if teaching:
        metadata["teaching"] = teaching
    metadata["registry"] = registered.describe() if registered else None
    if quantize:
        from gesture_rnn.deploy.quantize import SCHEME

        metadata["quantization"] = SCHEME
    else:
        metadata["quantization"] = None
    write_text_atomically(sidecar, json.dumps(metadata, indent=2) + "\n", "sidecar")
    print(f"  {fmt} model  {describe_file(target, quantize)}\n  sidecar     {sidecar}")
    return target
