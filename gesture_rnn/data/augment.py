"""Training-time augmentation of raw acceleration sequences [time, 3].

Motivation: a new wearer holds the watch at another angle and moves with another amplitude and
tempo. Each transform is off at 0; draws come from torch's global RNG, which ``SeedEachEpoch``
reseeds from (seed, epoch) — augmented runs stay reproducible and resumable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def random_rotation(max_degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A 3x3 rotation by an angle in [-max, max] degrees about a uniformly random axis (Rodrigues)."""
    axis = torch.randn(3, generator=generator)
    axis = axis / axis.norm().clamp_min(1e-12)
    angle = math.radians(max_degrees) * (2 * torch.rand((), generator=generator) - 1)
    k = torch.tensor(
        [[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]], dtype=torch.float32
    )
    return torch.eye(3) + torch.sin(angle) * k + (1 - torch.cos(angle)) * (k @ k)


def time_warp(sequence: torch.Tensor, factor: float) -> torch.Tensor:
    """Resample [T, 3] to round(T * factor) steps (at least 2) by linear interpolation."""
    steps = max(2, round(len(sequence) * factor))
    resampled = F.interpolate(sequence.T[None], size=steps, mode="linear", align_corners=True)
    return resampled[0].T.contiguous()


@dataclass(frozen=True)
class Augmentation:
    """Random rotation (degrees), amplitude scaling (±fraction), time warp (±fraction of the
    length) and Gaussian jitter (m/s²), applied in that order to each training sequence."""

    rotate_deg: float = 0.0
    scale: float = 0.0
    time_warp: float = 0.0
    jitter: float = 0.0

    @property
    def active(self) -> bool:
        return any(value > 0 for value in (self.rotate_deg, self.scale, self.time_warp, self.jitter))

    def __call__(self, sequence: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        out = sequence
        if self.rotate_deg > 0:
            out = out @ random_rotation(self.rotate_deg, generator).T
        if self.scale > 0:
            out = out * (1 + self.scale * (2 * torch.rand((), generator=generator) - 1))
        if self.time_warp > 0:
            out = time_warp(out, float(1 + self.time_warp * (2 * torch.rand((), generator=generator) - 1)))
        if self.jitter > 0:
            out = out + self.jitter * torch.randn(out.shape, generator=generator)
        return out


class AugmentingCollate:
    """The training loader's collate: augment every sequence, then pad as usual."""

    def __init__(self, augmentation: Augmentation, collate: Callable) -> None:
        self.augmentation = augmentation
        self.collate = collate

    def __call__(self, items: list[tuple[torch.Tensor, torch.Tensor]]):
        return self.collate([(self.augmentation(sequence), label) for sequence, label in items])
