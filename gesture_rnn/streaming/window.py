"""The sliding-window way to read a stream with a classifier of cut recordings (any checkpoint:
calibrated, personalised, an ensemble): at every sample it classifies the last ``WINDOW`` samples.
Such a classifier has no "no gesture" class; the probability of every gesture outside the
vocabulary stands in for it, and the decision rule's threshold does the rest.

It costs a whole forward pass over ``WINDOW`` samples per sample — the baseline the spotter, which
carries its state from sample to sample, is measured against (reports/stream.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

WINDOW = 20  # samples: the dataset's recordings have a median of 19 (10..51)
CHUNK = 4096  # windows per forward pass


def window_probabilities(
    net: torch.nn.Module, samples: np.ndarray, vocabulary: Sequence[int], window: int = WINDOW
) -> np.ndarray:
    """[samples, 1 + vocabulary]: column 0 the probability of a gesture outside ``vocabulary``
    (no gesture), then each vocabulary gesture's — of the classifier on the last ``window``
    samples (the first sample repeated before the stream's start)."""
    from gesture_rnn.deploy.inference import class_probabilities

    padded = np.concatenate([np.repeat(samples[:1], window - 1, axis=0), samples]).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)
    out = []
    with torch.no_grad():
        for start in range(0, len(windows), CHUNK):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + CHUNK]))
            out.append(class_probabilities(net, batch, torch.full((len(batch),), window)).numpy())
    probabilities = np.concatenate(out)
    columns = [g - 1 for g in vocabulary]
    other = np.delete(probabilities, columns, axis=1).sum(axis=1, keepdims=True)
    return np.concatenate([other, probabilities[:, columns]], axis=1)
