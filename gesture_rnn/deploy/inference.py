"""A trained network on recordings: calibrated class probabilities — predict.py's checkpoint
backend (``gesture_rnn.commands.predict`` is the command; ONNX models need none of this).

Imports torch but not Lightning: classifying a recording needs the network and nothing else.
"""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import ListConfig

from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.checkpoint import load_net
from gesture_rnn.models.nets import GestureNet


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


def load_predictor(ckpt_path: object, rotations: int = 1, rotation_degrees: float = 20.0) -> GestureNet:
    """What predict.py classifies with: one checkpoint's network, or — given several checkpoints
    (``ckpt_path=[a.ckpt,b.ckpt]``) or ``rotations`` > 1 — their calibrated probabilities
    averaged over every checkpoint and rotation (``gesture_rnn.models.ensemble``)."""
    from gesture_rnn.models.ensemble import AveragedNet, fixed_rotations

    paths = list(ckpt_path) if isinstance(ckpt_path, list | tuple | ListConfig) else [ckpt_path]
    if not paths:
        raise ConfigError("ckpt_path=[] names no checkpoint: give one, or a list of them to average")
    nets = [load_net(path) for path in paths]
    if len(nets) == 1 and rotations == 1:
        return nets[0]
    return AveragedNet(nets, fixed_rotations(rotations, rotation_degrees))


def probabilities_of(net: GestureNet, sequences: list[np.ndarray], chunk: int = 256) -> np.ndarray:
    """[n, classes] calibrated probabilities for recordings of any lengths, ``chunk`` at a time."""
    parts = [
        class_probabilities(net, *pad_sequences(sequences[i : i + chunk])).cpu().numpy()
        for i in range(0, len(sequences), chunk)
    ]
    return np.concatenate(parts)
