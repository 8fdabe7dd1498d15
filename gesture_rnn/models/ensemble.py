"""Averaged predictions: several trained networks (an ensemble of seeds or families) and/or
several rotations of each recording (test-time augmentation) behind one ``GestureNet``.

A new wearer's watch sits at an angle none of the training users had; the members disagree most
where one of them is wrong. Averaging their calibrated probabilities costs one forward pass per
member and rotation — the price ``make new_wearer`` reports next to the accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gesture_rnn.data.augment import random_rotation
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.nets import GestureNet


def fixed_rotations(copies: int, max_degrees: float, seed: int = 0) -> torch.Tensor:
    """[copies, 3, 3]: the identity first, then ``copies - 1`` rotations up to ``max_degrees``
    about random axes, drawn from ``seed`` — the same every time, so predictions repeat."""
    if copies < 1:
        raise ConfigError(f"rotations={copies} is invalid: it must be an integer >= 1")
    generator = torch.Generator().manual_seed(seed)
    turns = [random_rotation(max_degrees, generator) for _ in range(copies - 1)]
    return torch.stack([torch.eye(3), *turns])


class AveragedNet(GestureNet):
    """The mean of the members' calibrated probabilities over every rotation of the input.

    ``forward`` returns the log of that mean, and the temperature stays 1, so ``probabilities``
    gives the mean itself and everything that reads a ``GestureNet`` (predict, accuracy) works
    unchanged."""

    family = "averaged"

    def __init__(self, members: Sequence[GestureNet], rotations: torch.Tensor | None = None) -> None:
        if not members:
            raise ConfigError("an ensemble needs at least one trained network")
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("rotations", torch.eye(3)[None] if rotations is None else rotations)

    @property
    def passes(self) -> int:
        """Forward passes per recording: the cost relative to one network."""
        return len(self.members) * len(self.rotations)

    def _average(self, accel: torch.Tensor, lengths: torch.Tensor, padded: bool) -> torch.Tensor:
        total = 0.0
        for rotation in self.rotations:
            turned = accel @ rotation.T
            for member in self.members:
                logits = member.forward_padded(turned, lengths) if padded else member(turned, lengths)
                total = total + member.probabilities(logits)
        return torch.log(total / self.passes)

    def forward(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._average(accel, lengths, padded=False)

    def forward_padded(self, accel: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self._average(accel, lengths, padded=True)
