"""A gesture of one's own: teach a trained network a new gesture from a few takes without
changing what it answers for the gestures it knows.

The network and its head stay frozen. A taught gesture is a prototype — the mean of its takes'
representations (what the linear head sees). A recording is the taught gesture when its
representation lies nearer that prototype than the prototype of every known gesture (the mean
representation of the known gesture's training recordings, kept with the model); elsewhere the
network answers as before. So the known gestures change only where a recording lies nearest the
new prototype — the frozen embedding with a parallel light head of Xu et al. (CHI 2022), with
nothing trained at all: teaching is one forward pass over the takes.

A taught gesture may also *replace* a known one (a gesture its wearer cannot make): that
gesture's output is then never answered, and its prototype no longer competes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.models.nets import GestureNet

# how far above the network's top logit a taught gesture's logit rises per unit of relative
# distance: (nearest known - taught) / (nearest known + taught) in (-1, 1), so probabilities
# saturate only well inside the taught prototype's region
SHARPNESS = 12.0
MASKED = -1.0e4  # the logit of a replaced gesture: never answered


class TaughtHead(nn.Module):
    """The network's linear head with taught gestures beside it: outputs ``[known..., taught...]``."""

    def __init__(
        self, head: nn.Linear, known: torch.Tensor, taught: torch.Tensor, replaced: Sequence[int]
    ) -> None:
        super().__init__()
        self.head = head
        mask = torch.zeros(known.shape[0], dtype=torch.bool)
        mask[list(replaced)] = True
        self.register_buffer("known", known.float())  # [C, d] prototypes of the known gestures
        self.register_buffer("taught", taught.float())  # [T, d] prototypes of the taught ones
        self.register_buffer("replaced", mask)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.head(features).masked_fill(self.replaced, MASKED)
        to_known = squared_distances(features, self.known).masked_fill(self.replaced, float("inf"))
        nearest_known = to_known.min(dim=1, keepdim=True).values
        to_taught = squared_distances(features, self.taught)
        closer = (nearest_known - to_taught) / (nearest_known + to_taught).clamp_min(1e-12)
        top = logits.max(dim=1, keepdim=True).values
        return torch.cat([logits, top + SHARPNESS * closer], dim=1)


def squared_distances(points: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """``[B, P]`` squared Euclidean distances (as matrix products: exportable to ONNX)."""
    return (
        (points**2).sum(1, keepdim=True) - 2 * points @ prototypes.T + (prototypes**2).sum(1)[None, :]
    ).clamp_min(0.0)


def linear_head(net: GestureNet) -> nn.Linear:
    """The network's own linear head (inside a ``TaughtHead`` once taught)."""
    return net.head.head if isinstance(net.head, TaughtHead) else net.head


@torch.no_grad()
def representations(net: GestureNet, sequences: Sequence[np.ndarray], batch: int = 256) -> torch.Tensor:
    """What the network's linear head sees, per recording, in eval mode."""
    head = linear_head(net)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda module, args: captured.append(args[0]))
    was_training = net.training
    net.eval()
    try:
        for start in range(0, len(sequences), batch):
            net(*pad_sequences(list(sequences[start : start + batch])))
    finally:
        hook.remove()
        net.train(was_training)
    return torch.cat(captured)


def known_prototypes(net: GestureNet, sequences: Sequence[np.ndarray], labels: np.ndarray) -> torch.Tensor:
    """``[C, d]``: each known gesture's mean representation over its training recordings (a
    gesture without any — one held out of training — gets a prototype that never competes)."""
    feats = representations(net, sequences)
    targets = torch.as_tensor(labels)
    classes = linear_head(net).out_features
    far = torch.full((feats.shape[1],), 1.0e6)
    return torch.stack([feats[targets == c].mean(0) if (targets == c).any() else far for c in range(classes)])


def known_from_dataset(
    net: GestureNet, seen: set[str] | None, data_path: str | None, cache_dir: str, key: str
) -> torch.Tensor:
    """The known gestures' prototypes from the model's own training recordings (``seen``: their
    fingerprints, ``checkpoint.seen_recordings``), found by content in the dataset."""
    from gesture_rnn.data.recordings import seen_in_dataset

    if seen is None:
        raise ConfigError(f"{key} does not record its training recordings: retrain it")
    return known_prototypes(net, *seen_in_dataset(seen, data_path, cache_dir))


def check_takes(takes: Sequence[np.ndarray], name: str) -> None:
    """Too few takes, or takes that are copies of one another: refused in one line."""
    if len(takes) < 1:
        raise DataError(f"the gesture {name!r} has no takes: record at least one")
    seen: dict[bytes, int] = {}
    for number, take in enumerate(takes, start=1):
        key = np.ascontiguousarray(take, dtype=np.float32).tobytes()
        if key in seen:
            raise DataError(
                f"takes {seen[key]} and {number} of {name!r} are copies of one another: record each anew"
            )
        seen[key] = number


def teach(
    net: GestureNet,
    takes: Sequence[np.ndarray],
    known: torch.Tensor | None,
    replace: int | None = None,
) -> GestureNet:
    """``net`` (changed in place, and returned) answering one more output: the gesture the
    ``takes`` show; ``known``: the known gestures' prototypes (``known_prototypes``; a net taught
    already keeps its own); ``replace`` (0-based) is a known gesture it stands in for."""
    if known is None and not isinstance(net.head, TaughtHead):
        raise ValueError("the known gestures' prototypes are needed for a first taught gesture")
    classes = net.head.known.shape[0] if isinstance(net.head, TaughtHead) else known.shape[0]
    if replace is not None and not 0 <= replace < classes:
        raise ConfigError(f"replace={replace + 1} is invalid: it must be a gesture 1-{classes}")
    prototype = representations(net, takes).mean(0, keepdim=True)
    if isinstance(net.head, TaughtHead):
        head = net.head
        replaced = [
            *torch.flatten(head.replaced.nonzero()).tolist(),
            *([replace] if replace is not None else []),
        ]
        net.head = TaughtHead(head.head, head.known, torch.cat([head.taught, prototype]), replaced)
    else:
        net.head = TaughtHead(net.head, known, prototype, [] if replace is None else [replace])
    return net.eval()


def taught_record(net: GestureNet, names: Sequence[str]) -> dict[str, Any]:
    """What a checkpoint keeps of the taught gestures (plain lists: ``weights_only`` loading)."""
    head = net.head
    if not isinstance(head, TaughtHead):
        return {}
    return {
        "names": list(names),
        "known": head.known.tolist(),
        "taught": head.taught.tolist(),
        "replaced": torch.flatten(head.replaced.nonzero()).tolist(),
    }


def with_taught(net: GestureNet, record: dict[str, Any] | None) -> GestureNet:
    """``net`` with the taught gestures a checkpoint's ``taught`` record describes."""
    if not record:
        return net
    net.head = TaughtHead(
        net.head, torch.tensor(record["known"]), torch.tensor(record["taught"]), record["replaced"]
    )
    return net.eval()


def taught_names(record: dict[str, Any] | None, first: int) -> dict[int, str]:
    """``{21: "wave", ...}``: the number each taught gesture answers as, from ``first`` on."""
    return {first + n: name for n, name in enumerate((record or {}).get("names", []))}
