"""Read a train.py checkpoint — the one place that does — as a dict or a network
(the whole LightningModule: ``classifier.load_classifier``).

Checkpoints load with ``torch.load(weights_only=True)``: plain tensors and values, no code. Those
written before networks became their own modules (a ``GRUClassifier`` with ``gru.*``/``head.*``
weights) are mapped to the current layout on reading.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gesture_rnn.errors import ConfigError
from gesture_rnn.models.nets import COMMON_SETTINGS, FREE_SETTINGS, GestureNet, build_net
from gesture_rnn.models.teach import with_taught
from gesture_rnn.utils.atomic import atomic_write

NET_PREFIX = "net."
# hyperparameters of the old GRUClassifier that now belong to its network
_OLD_NET_KEYS = ("hidden", "layers", "dropout", "bidirectional", "packed", "input_size", "num_classes")
_OLD_WEIGHTS = ("gru.", "head.", "mean", "std", "temperature")


def upgrade_checkpoint(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """Map a checkpoint of the old ``GRUClassifier`` to the ``GestureClassifier(net=GRUNet)``
    layout, in place, and give one written before calibration its temperature (1)."""
    hparams = checkpoint.get("hyper_parameters")
    state = checkpoint.get("state_dict")
    if isinstance(state, dict) and (NET_PREFIX + "mean" in state or "mean" in state):
        # written before probability calibration: temperature 1 (uncalibrated), as it predicted
        prefix = NET_PREFIX if NET_PREFIX + "mean" in state else ""
        state.setdefault(prefix + "temperature", torch.ones(()))
    if not isinstance(hparams, dict) or "net" in hparams or "hidden" not in hparams:
        return checkpoint
    net = {"_target_": "gesture_rnn.models.nets.GRUNet"}
    net.update({key: hparams.pop(key) for key in _OLD_NET_KEYS if key in hparams})
    hparams["net"] = net
    state = checkpoint.get("state_dict", {})
    for key in list(state):
        if key.startswith(_OLD_WEIGHTS):
            state[NET_PREFIX + key] = state.pop(key)
    state.pop("final_train_loss", None)
    state.setdefault("val_acc_best.max_value", torch.tensor(float("-inf")))
    if "learning_curves" in checkpoint:
        checkpoint.setdefault("callbacks", {})["LearningCurves"] = {
            "history": checkpoint.pop("learning_curves")
        }
    return checkpoint


def checkpoint_file(path: str | Path | None, key: str = "ckpt_path") -> Path:
    if not path:
        raise ConfigError(f"{key} is required: {key}=outputs/.../checkpoints/last.ckpt")
    checkpoint = Path(str(path)).expanduser()
    if checkpoint.is_dir():
        raise ConfigError(
            f"{key}={path} is a folder; pass a checkpoint file in it, e.g. checkpoints/last.ckpt"
        )
    if not checkpoint.is_file():
        raise ConfigError(f"{key}={path} does not exist")
    return checkpoint


def read_checkpoint(path: str | Path | None, key: str = "ckpt_path", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint as a dict in the current layout, or one ConfigError naming ``key``; with
    ``mmap`` the tensors are read only when touched (to look at the settings of many).

    Anything ``torch.load(weights_only=True)`` refuses (pickled code, a damaged file, not a torch
    file at all) and any dict that is not a Lightning checkpoint of this project get the same line.
    """
    file = checkpoint_file(path, key)
    refused = ConfigError(f"{key}={path} is not a checkpoint written by train.py: unsafe or unknown content")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception:
        raise refused from None
    hparams = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    if (
        not isinstance(hparams, dict)
        or not ("net" in hparams or "hidden" in hparams)
        or not isinstance(checkpoint.get("state_dict"), dict)
    ):
        raise refused
    return upgrade_checkpoint(checkpoint)


def data_state(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The datamodule's saved state: ``checksum`` of the data, split ``seed`` and ``seen``."""
    return dict(
        next((v for k, v in checkpoint.items() if k.endswith(("GestureDataModule", "StreamDataModule"))), {})
    )


def seen_recordings(checkpoint: dict[str, Any]) -> set[str] | None:
    """Fingerprints of every recording the model trained or selected on, a personalised model's
    shots included; None for a checkpoint written before they were recorded."""
    seen = data_state(checkpoint).get("seen")
    if seen is None:
        return None
    return set(seen) | set((checkpoint.get("personalization") or {}).get("shots_seen") or [])


def net_from_checkpoint(checkpoint: dict[str, Any]) -> GestureNet:
    """The trained network alone (no Lightning needed): what predict and export use."""
    net = build_net(checkpoint["hyper_parameters"]["net"])
    state = checkpoint["state_dict"]
    net.load_state_dict({k[len(NET_PREFIX) :]: v for k, v in state.items() if k.startswith(NET_PREFIX)})
    return with_taught(net, checkpoint.get("taught")).eval()  # teach.py's gestures, if any


def output_beside_base(out: object, ckpt_path: object, what: str) -> Path:
    """Where a command derived from ``ckpt_path`` writes its model (``out``), refused when it
    would overwrite the base checkpoint itself."""
    path = Path(str(out)).expanduser()
    if path.exists() and path.resolve() == checkpoint_file(ckpt_path).resolve():
        raise ConfigError(f"out={out} is the base checkpoint itself; write the {what} model elsewhere")
    return path


def load_net(path: str | Path | None, key: str = "ckpt_path") -> GestureNet:
    return net_from_checkpoint(read_checkpoint(path, key))


def write_temperature(path: str | Path, temperature: float) -> None:
    """Store a fitted temperature in a checkpoint file (written to a temporary file, then renamed)."""

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    checkpoint["state_dict"][NET_PREFIX + "temperature"] = torch.tensor(float(temperature))
    with atomic_write(Path(path), "wb") as handle:
        torch.save(checkpoint, handle)


def check_shape(checkpoint: dict[str, Any], net_cfg: Any, key: str) -> None:
    """A clear error instead of a size-mismatch traceback: the configured network must be the
    checkpoint's (family and every setting but dropout and packing)."""
    # a checkpoint written before a common setting existed was trained with its default
    saved = {**COMMON_SETTINGS, **checkpoint["hyper_parameters"]["net"]}
    differ = [
        f"model.net.{name}={net_cfg.get(name)!r} (checkpoint: {saved.get(name)!r})"
        for name in saved
        if name not in FREE_SETTINGS and name in net_cfg and net_cfg.get(name) != saved.get(name)
    ]
    if differ:
        raise ConfigError(
            f"{key} was trained with another model: {', '.join(differ)}; "
            "resume with the run's own model settings"
        )
