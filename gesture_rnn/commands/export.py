"""``export.py``: a trained model outside training — a classifier as ONNX or TorchScript
(``gesture_rnn.deploy.export``), a spotter as its ONNX step model (``gesture_rnn.streaming.onnx``);
which one the checkpoint says."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def run_export(cfg: DictConfig) -> Path:
    from gesture_rnn.deploy import export
    from gesture_rnn.models.checkpoint import checkpoint_file
    from gesture_rnn.streaming.checkpoint import is_spotter_file
    from gesture_rnn.tracking.registry import model_checkpoint

    fmt, quantize = export.export_settings(cfg)
    path, _ = model_checkpoint(cfg)
    source = checkpoint_file(path)
    if is_spotter_file(source):  # train.py experiment=spotter
        from gesture_rnn.streaming.onnx import export_spotter_checkpoint

        return export_spotter_checkpoint(cfg, source, fmt, quantize)
    return export.run_export(cfg)
