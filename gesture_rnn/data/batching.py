"""Padding of variable-length sequences: the one implementation training and inference share."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # padded [B, T, 3], lengths [B], labels [B]


def pad_sequences(
    sequences: Sequence[torch.Tensor | np.ndarray], pad_value: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """[time, 3] sequences -> (padded [B, T_max, 3], lengths [B]); padding after each sequence's end."""
    tensors = [
        torch.as_tensor(np.ascontiguousarray(s)) if isinstance(s, np.ndarray) else s for s in sequences
    ]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return pad_sequence(tensors, batch_first=True, padding_value=pad_value), lengths


def pad_batch(items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    """A DataLoader's collate: zero-pad the sequences, stack the labels."""
    sequences, labels = zip(*items, strict=True)
    padded, lengths = pad_sequences(sequences)
    return padded, lengths, torch.stack(labels)
