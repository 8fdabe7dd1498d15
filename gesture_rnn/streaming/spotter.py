"""The streaming recognizer's network: a per-sample gesture spotter with a "no gesture" class.

A causal convolution (stride 1) feeds a GRU whose every step is classified: class 0 is "no
gesture" (rest, everyday movement, a gesture still under way), class k the k-th gesture of the
vocabulary, which the training labels just after that gesture ends. Output t depends on samples
<= t only, so the network runs sample by sample with constant work: ``step`` keeps the last
``kernel - 1`` samples and the GRU state — the same numbers as ``forward`` over the whole stream,
whether it is fed one sample per call or a few at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gesture_rnn.data.facts import GESTURES, NUM_CHANNELS
from gesture_rnn.errors import ConfigError

NO_GESTURE = 0


class GestureSpotter(nn.Module):
    """Logits over ("no gesture", *vocabulary) at every sample of a stream."""

    def __init__(
        self,
        vocabulary: Sequence[int],
        channels: int = 48,
        kernel: int = 5,
        hidden: int = 96,
        dropout: float = 0.1,
        learned_non_target: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.vocabulary = [int(g) for g in vocabulary]
        # gestures learnt as classes of their own and counted as "no gesture" (``fold``)
        self.learned_non_target = [int(g) for g in learned_non_target]
        self.kernel = kernel
        self.conv = nn.Conv1d(NUM_CHANNELS, channels, kernel)
        self.gru = nn.GRU(channels, hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 1 + len(self.vocabulary) + len(self.learned_non_target))
        self.register_buffer("mean", torch.zeros(NUM_CHANNELS))
        self.register_buffer("std", torch.ones(NUM_CHANNELS))

    @property
    def hidden(self) -> int:
        return self.gru.hidden_size

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std)

    def forward(self, accel: torch.Tensor) -> torch.Tensor:
        """[B, T, 3] raw acceleration -> [B, T, 1 + vocabulary] logits; the stream is taken to
        have been at its first sample before it began (so step 0 needs no history)."""
        x = ((accel - self.mean) / self.std).transpose(1, 2)
        x = F.pad(x, (self.kernel - 1, 0), mode="replicate")
        features = torch.relu(self.conv(x)).transpose(1, 2)
        outputs, _ = self.gru(features)
        return self.head(self.dropout(outputs))

    def fold(self, probabilities: torch.Tensor) -> torch.Tensor:
        """[..., classes] -> [..., 1 + vocabulary]: the learnt non-target gestures' probability
        added to "no gesture" (what every reader of a spotter — detect, ONNX, the page — sees)."""
        if not self.learned_non_target:
            return probabilities
        size = 1 + len(self.vocabulary)
        rest = probabilities[..., :1] + probabilities[..., size:].sum(dim=-1, keepdim=True)
        return torch.cat((rest, probabilities[..., 1:size]), dim=-1)

    def probabilities(self, samples: np.ndarray) -> np.ndarray:
        """[samples, 1 + vocabulary] of one whole stream [samples, 3] (what ``step`` gives too)."""
        with torch.no_grad():
            accel = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None]
            return self.fold(torch.softmax(self(accel), dim=2))[0].numpy()

    def initial_state(self, accel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The step state before the first sample [B, 3]: the history window of raw samples
        (that sample repeated, as ``forward`` pads) and a zero GRU state."""
        window = accel.unsqueeze(1).expand(-1, self.kernel - 1, -1).contiguous()
        return window, torch.zeros(1, len(accel), self.hidden)

    def step(
        self, accel: torch.Tensor, window: torch.Tensor, state: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next raw samples of each stream [B, T, 3] (T >= 1: one sample, or a few a device
        buffered) -> (logits [B, T, 1 + vocabulary], window, state) to carry to the next call."""
        inputs = torch.cat((window, accel), dim=1)  # [B, kernel - 1 + T, 3], raw
        x = ((inputs - self.mean) / self.std).transpose(1, 2)
        features = torch.relu(self.conv(x))  # [B, C, T]
        output, state = self.gru(features.transpose(1, 2), state)
        return self.head(output), inputs[:, inputs.shape[1] - (self.kernel - 1) :], state

    def settings(self) -> dict[str, object]:
        return {
            "vocabulary": self.vocabulary,
            "channels": self.conv.out_channels,
            "kernel": self.kernel,
            "hidden": self.hidden,
            "dropout": self.dropout.p,
            "learned_non_target": self.learned_non_target,
        }


SPOTTER_TARGET = f"{GestureSpotter.__module__}.{GestureSpotter.__qualname__}"
SPOTTER_SETTINGS = {"channels", "kernel", "hidden", "dropout", "vocabulary", "learned_non_target"}


def build_spotter(node: Mapping[str, Any]) -> GestureSpotter:
    """The spotter a ``{_target_: ...GestureSpotter, **settings}`` config describes — that class
    only, so a checkpoint's config cannot make loading it call anything else."""
    check_spotter_settings(node)
    return GestureSpotter(**{k: v for k, v in node.items() if k != "_target_"})


def check_spotter_settings(node: Mapping[str, Any]) -> None:
    """model.net of a spotter: its class and every setting in range, the key named."""
    if node.get("_target_") != SPOTTER_TARGET:
        raise ConfigError(
            f"model.net._target_={node.get('_target_')!r}: a spotter's network is {SPOTTER_TARGET}"
        )
    if unknown := sorted(set(node) - SPOTTER_SETTINGS - {"_target_"}):
        raise ConfigError(
            f"model.net.{unknown[0]} is not a setting of the spotter ({sorted(SPOTTER_SETTINGS)})"
        )
    for key in ("channels", "kernel", "hidden"):
        value = node.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"model.net.{key}={value!r} is invalid: it must be an integer >= 1")
    dropout = node.get("dropout", 0.0)
    if not isinstance(dropout, int | float) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ConfigError(f"model.net.dropout={dropout!r} is invalid: it must be a number in [0, 1)")
    vocabulary = node.get("vocabulary")
    if (
        not isinstance(vocabulary, list | tuple)
        or not vocabulary
        or not all(isinstance(g, int) and not isinstance(g, bool) and g in GESTURES for g in vocabulary)
        or len(set(vocabulary)) != len(vocabulary)
    ):
        raise ConfigError(f"model.net.vocabulary={vocabulary!r} is invalid: distinct gestures of 1..20")
    learned = node.get("learned_non_target", [])
    if not isinstance(learned, list | tuple) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g in GESTURES and g not in vocabulary
        for g in learned
    ):
        raise ConfigError(
            f"model.net.learned_non_target={learned!r} is invalid: gestures of 1..20 outside the vocabulary"
        )
