"""Padding of variable-length sequences: the one implementation training and inference share."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence


def pad_sequences(
    sequences: Sequence[torch.Tensor | np.ndarray], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """[time, 3] sequences -> (padded [B, T_max, 3], lengths [B]); padding after each sequence's end."""
    tensors = [
        torch.as_tensor(np.ascontiguousarray(s)) if isinstance(s, np.ndarray) else s for s in sequences
    ]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=pad_value), lengths


def pad_batch(
    items: list[tuple[torch.Tensor, ...]],
    pad: Callable[[list[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]] = pad_sequences,
) -> tuple[torch.Tensor, ...]:
    """A DataLoader's collate: ``pad`` the sequences (zero padding; augmentation passes its own),
    stack the labels and anything after them, such as distillation's soft targets."""
    sequences, labels, *extra = zip(*items, strict=True)
    padded, lengths = pad(list(sequences))
    return padded, lengths, torch.stack(labels), *(torch.stack(column) for column in extra)
