"""A trained model outside the training code: predict, export (ONNX, TorchScript), MLflow model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from gesture_rnn.data.parsing import NUM_CLASSES
from gesture_rnn.data.recordings import read_recordings
from gesture_rnn.errors import ConfigError
from gesture_rnn.models import GRUClassifier
from gesture_rnn.models.checkpoint import load_checkpoint
from gesture_rnn.models.gru import gather_last_step

GESTURES = list(range(1, NUM_CLASSES + 1))  # the dataset's gesture numbers, class i = gesture i + 1
SAMPLING_RATE_HZ = 9  # about 9 Hz in the recordings (≈110 ms between samples)
ONNX_OPSET = 17


# --- the deployable model ------------------------------------------------------------------------
class GestureProbabilities(nn.Module):
    """Raw acceleration in, class probabilities out; no packing, so it exports.

    ``forward(accel, lengths)``: accel float32 [batch, time, 3] in m/s² (as recorded, padded
    after each sequence's end), lengths int64 [batch]. Without ``lengths`` (MLflow's pyfunc passes
    one tensor) padding rows are NaN and the lengths are counted from them.
    """

    def __init__(self, model: GRUClassifier) -> None:
        super().__init__()
        if model.hparams.bidirectional:
            raise ConfigError(
                "a bidirectional GRU needs packed sequences, which do not export; "
                "export a one-directional model (model.bidirectional=false)"
            )
        # plain modules and buffers, not the LightningModule: tracing and export stay trainer-free
        self.gru, self.head = model.gru, model.head
        self.register_buffer("mean", model.mean.detach().clone())
        self.register_buffer("std", model.std.detach().clone())
        self.eval()

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None:
            lengths = (~torch.isnan(accel[..., 0])).sum(dim=1)
            accel = torch.nan_to_num(accel, nan=0.0)
        outputs, _ = self.gru((accel - self.mean) / self.std)
        return torch.softmax(self.head(gather_last_step(outputs, lengths)), dim=1)


def padded_batch(sequences: list[np.ndarray], pad: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    tensors = [torch.from_numpy(np.ascontiguousarray(s)) for s in sequences]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=pad), lengths


@torch.inference_mode()
def predict(model: GRUClassifier, recordings: list[tuple[str, np.ndarray]], top_k: int = 3) -> list[dict]:
    """One dict per recording: file, gesture (1-20), probability, top3 [{gesture, probability}]."""
    wrapper = GestureProbabilities(model) if not model.hparams.bidirectional else None
    results = []
    for start in range(0, len(recordings), 256):
        chunk = recordings[start : start + 256]
        accel, lengths = padded_batch([values for _, values in chunk])
        if wrapper is not None:
            probabilities = wrapper(accel, lengths)
        else:
            probabilities = torch.softmax(model.eval()(accel, lengths), dim=1)
        best = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        for (name, _), values, indices in zip(chunk, best.values, best.indices, strict=True):
            top = [
                {"gesture": int(i) + 1, "probability": round(float(p), 6)}
                for p, i in zip(values, indices, strict=True)
            ]
            results.append({"file": name, **top[0], "top3": top})
    return results


def format_prediction(result: dict) -> str:
    others = ", ".join(f"{t['gesture']} ({t['probability']:.3f})" for t in result["top3"])
    return f"{result['file']}: gesture {result['gesture']} (p={result['probability']:.3f}); top 3: {others}"


# --- export --------------------------------------------------------------------------------------
def checkpoint_metadata(checkpoint_path: Path, model: GRUClassifier) -> dict[str, Any]:
    """What a deployment needs to know beside the weights (the sidecar JSON)."""
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    data_state = next(
        (value for key, value in checkpoint.items() if key.endswith("GestureDataModule")), {}
    )  # written by GestureDataModule.state_dict
    return {
        "classes": [f"gesture {g}" for g in GESTURES],
        "class_index_to_gesture": GESTURES,
        "inputs": {
            "accel": "float32 [batch, time, 3]: x y z acceleration in m/s², as recorded (raw; "
            "normalisation is inside the model), zero-padded after each sequence's end",
            "lengths": "int64 [batch]: real number of time steps of each sequence",
        },
        "output": f"float32 [batch, {NUM_CLASSES}]: class probabilities (softmax)",
        "sampling_rate_hz": SAMPLING_RATE_HZ,
        "model": {key: value for key, value in dict(model.hparams).items()},
        "normalization": {"mean": model.mean.tolist(), "std": model.std.tolist()},
        "data_md5": data_state.get("checksum"),
        "checkpoint": str(checkpoint_path),
    }


def example_inputs(model: GRUClassifier) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    accel = torch.randn(2, 12, 3, generator=generator) * 3 + model.mean
    return accel, torch.tensor([12, 7])


def export_onnx(model: GRUClassifier, path: Path) -> Path:
    wrapper = GestureProbabilities(model)
    batch, time = torch.export.Dim("batch"), torch.export.Dim("time")
    with warnings.catch_warnings():  # the exporter's internal deprecation and naming chatter
        warnings.simplefilter("ignore")
        _onnx_export(wrapper, model, path, batch, time)
    return path


def _onnx_export(wrapper: nn.Module, model: GRUClassifier, path: Path, batch, time) -> None:
    torch.onnx.export(
        wrapper,
        example_inputs(model),
        str(path),
        input_names=["accel", "lengths"],
        output_names=["probabilities"],
        dynamic_shapes={"accel": {0: batch, 1: time}, "lengths": {0: batch}},
        opset_version=ONNX_OPSET,
        dynamo=True,
        verbose=False,
    )


def export_torchscript(model: GRUClassifier, path: Path) -> Path:
    with torch.no_grad():
        traced = torch.jit.trace(GestureProbabilities(model), example_inputs(model), check_trace=False)
    traced.save(str(path))
    return path


def write_sidecar(metadata: dict[str, Any], model_path: Path, fmt: str) -> Path:
    sidecar = model_path.with_name(model_path.name + ".json")
    sidecar.write_text(json.dumps({**metadata, "format": fmt, "file": model_path.name}, indent=2) + "\n")
    return sidecar


# --- MLflow --------------------------------------------------------------------------------------
def log_mlflow_model(model: GRUClassifier, run_id: str, tracking_uri: str, name: str = "model") -> str:
    """``mlflow.pytorch.log_model`` of the deployable model; pyfunc input: float32 [batch, time, 3]
    with NaN rows after each sequence's end. Returns the model URI."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    wrapper = GestureProbabilities(model)
    accel, lengths = example_inputs(model)
    example = accel.clone()
    example[1, int(lengths[1]) :] = float("nan")
    # any batch size and length: (-1, -1, 3) in, (-1, 20) out
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, 3))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]),
    )
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(run_id=run_id):
        info = mlflow.pytorch.log_model(
            wrapper,
            name=name,
            signature=signature,
            input_example=example.numpy(),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
            # pickle, not "pt2": torch.export would freeze the example's sequence length; the
            # package travels with the model so it loads without this checkout
            serialization_format="pickle",
            code_paths=[str(Path(__file__).resolve().parent)],
        )
    return info.model_uri


# --- the commands --------------------------------------------------------------------------------
OUTPUTS = ("text", "json")
FORMATS = {"onnx": (".onnx", export_onnx), "torchscript": (".pt", export_torchscript)}


def run_predict(cfg: DictConfig) -> list[dict]:
    """``predict.py``: classify every recording of ``input``; print text or JSON lines."""
    if cfg.get("output") not in OUTPUTS:
        raise ConfigError(f"output={cfg.get('output')!r} is invalid: it must be one of {list(OUTPUTS)}")
    if not cfg.get("input"):
        raise ConfigError("input is required: python predict.py ckpt_path=... input=recording.txt")
    model = load_checkpoint(cfg.get("ckpt_path"))
    results = predict(model, list(read_recordings(cfg.input)), top_k=int(cfg.get("top_k", 3)))
    for result in results:
        print(json.dumps(result) if cfg.output == "json" else format_prediction(result))
    return results


def run_export(cfg: DictConfig) -> Path:
    """``export.py``: the checkpoint as ONNX or TorchScript, with its JSON sidecar."""
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r} is invalid: it must be one of {list(FORMATS)}")
    model = load_checkpoint(cfg.get("ckpt_path"))
    suffix, export = FORMATS[fmt]
    checkpoint = Path(cfg.ckpt_path).expanduser()
    target = Path(cfg.out).expanduser() if cfg.get("out") else checkpoint.with_suffix(suffix)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")  # never a half-written model at target
    try:
        export(model, partial)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    sidecar = write_sidecar(checkpoint_metadata(checkpoint, model), target, fmt)
    print(f"  {fmt} model  {target}\n  sidecar     {sidecar}")
    return target
