"""Training-time augmentation of raw acceleration sequences [time, 3].

Motivation: a new wearer holds the watch at another angle and moves with another amplitude and
tempo. Each transform is off at 0; draws come from torch's global RNG, which ``SeedEachEpoch``
reseeds from (seed, epoch) — augmented runs stay reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gesture_rnn.data.batching import pad_batch, pad_sequences


def random_rotations(
    count: int, max_degrees: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """[count, 3, 3] rotations, each by an angle in [-max, max] degrees about a uniformly random
    axis (Rodrigues: R = I + sin·K + (1 - cos)·K²), drawn in one go."""
    axes = torch.randn(count, 3, generator=generator)
    axes = axes / axes.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angles = math.radians(max_degrees) * (2 * torch.rand(count, generator=generator) - 1)
    x, y, z = axes.unbind(1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=1).view(count, 3, 3)
    sin, one_minus_cos = angles.sin().view(count, 1, 1), (1 - angles.cos()).view(count, 1, 1)
    return torch.eye(3) + sin * k + one_minus_cos * (k @ k)


def random_rotation(max_degrees: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """One 3x3 rotation (see ``random_rotations``)."""
    return random_rotations(1, max_degrees, generator)[0]


def time_warp(sequence: torch.Tensor, factor: float) -> torch.Tensor:
    """Resample [T, 3] to round(T * factor) steps (at least 2) by linear interpolation."""
    batch, lengths = warp_padded(sequence[None], torch.tensor([len(sequence)]), torch.tensor([factor]))
    return batch[0, : int(lengths[0])]


def warp_padded(
    batch: torch.Tensor, lengths: torch.Tensor, factors: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample each sequence of a zero-padded batch [B, T, C] to round(length * factor) steps
    (at least 2) by linear interpolation with aligned ends (``F.interpolate(mode="linear",
    align_corners=True)``'s arithmetic), all at once: a loop over sequences costs more than the
    small networks' training step. Returns the new zero-padded batch and lengths."""
    new_lengths = torch.round(lengths * factors.to(torch.float64)).long().clamp_min(2)
    steps = torch.arange(int(new_lengths.max()), dtype=torch.float64).unsqueeze(0)  # [1, T']
    scale = (lengths - 1).to(torch.float64) / (new_lengths - 1).to(torch.float64)  # [B]
    position = (steps * scale.unsqueeze(1)).to(torch.float32)
    last = (lengths - 1).unsqueeze(1)
    low = position.floor().long().clamp(min=0).minimum(last)
    high = (low + 1).minimum(last)
    weight = (position - low.to(position.dtype)).unsqueeze(2)
    channels = batch.shape[2]
    below = batch.gather(1, low.unsqueeze(2).expand(-1, -1, channels))
    above = batch.gather(1, high.unsqueeze(2).expand(-1, -1, channels))
    real = (steps < new_lengths.unsqueeze(1)).unsqueeze(2)
    warped = torch.where(real, below + (above - below) * weight, torch.zeros((), dtype=batch.dtype))
    return warped, new_lengths


@dataclass(frozen=True)
class Augmentation:
    """Random rotation (degrees), amplitude scaling (±fraction), time warp (±fraction of the
    length) and Gaussian jitter (m/s²) of each training sequence."""

    rotate_deg: float = 0.0
    scale: float = 0.0
    time_warp: float = 0.0
    jitter: float = 0.0

    @property
    def active(self) -> bool:
        return any(value > 0 for value in (self.rotate_deg, self.scale, self.time_warp, self.jitter))

    def padded(
        self, sequences: list[torch.Tensor], generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment a batch and pad it -> (padded [B, T, 3], lengths [B]). Every transform acts on
        the padded batch at once, and the padding stays zero."""
        count = len(sequences)
        batch, lengths = pad_sequences(sequences)
        if self.time_warp > 0:
            factors = 1 + self.time_warp * (2 * torch.rand(count, generator=generator) - 1)
            batch, lengths = warp_padded(batch, lengths, factors)
        if self.rotate_deg > 0:
            batch = batch @ random_rotations(count, self.rotate_deg, generator).transpose(1, 2)
        if self.scale > 0:
            batch = batch * (1 + self.scale * (2 * torch.rand(count, 1, 1, generator=generator) - 1))
        if self.jitter > 0:
            real = torch.arange(batch.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
            batch = batch + self.jitter * torch.randn(batch.shape, generator=generator) * real.unsqueeze(2)
        return batch, lengths

    def __call__(self, sequence: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """One augmented [time, 3] sequence (the sequence itself when every transform is off)."""
        if not self.active:
            return sequence
        batch, lengths = self.padded([sequence], generator)
        return batch[0, : int(lengths[0])]


class AugmentingCollate:
    """The training loader's collate: augment and pad the batch's sequences, stack the labels
    (and anything after them, such as distillation's soft targets)."""

    def __init__(self, augmentation: Augmentation) -> None:
        self.augmentation = augmentation

    def __call__(self, items: list[tuple[torch.Tensor, ...]]) -> tuple[torch.Tensor, ...]:
        return pad_batch(items, self.augmentation.padded)
