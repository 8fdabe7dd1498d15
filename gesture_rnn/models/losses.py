"""The training loss beside the networks it trains: cross-entropy, softened by teachers when
distilling (``model.distillation``; the teachers' soft targets come from
``gesture_rnn.training.distillation``)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def distillation_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft_targets: torch.Tensor | None,
    weight: float,
    temperature: float,
) -> torch.Tensor:
    """(1 - weight) · cross-entropy with the labels + weight · T² · KL(teachers ‖ student at T).

    T² keeps the soft part's gradient on the scale of the hard part's as T changes. At weight 0
    (or without soft targets) this is the plain cross-entropy and the teachers are ignored.
    """
    hard = F.cross_entropy(logits, labels)
    if soft_targets is None or weight == 0:
        return hard
    student = F.log_softmax(logits / temperature, dim=1)
    soft = F.kl_div(student, soft_targets, reduction="batchmean") * temperature**2
    return (1 - weight) * hard + weight * soft


def mixed_batch(
    accel: torch.Tensor, lengths: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mixup for recordings of different lengths (Zhang et al. 2018): each recording is paired
    with another of the batch, both resampled to the longer one's length (ends aligned, as the
    time warp does) and mixed λ : 1 - λ, λ ~ Beta(α, α) once per batch. Returns the mixed batch,
    its lengths, each row's partner (an index into the batch) and λ; the loss is
    λ · loss(labels) + (1 - λ) · loss(partners' labels). Draws come from torch's global RNG, which
    ``SeedEachEpoch`` reseeds per epoch (reproducible, resumable)."""
    from gesture_rnn.data.augment import warp_padded

    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    partner = torch.randperm(len(lengths))
    common = torch.maximum(lengths, lengths[partner])
    own, _ = warp_padded(accel, lengths, common / lengths)
    other, _ = warp_padded(accel[partner], lengths[partner], common / lengths[partner])
    width = min(own.shape[1], other.shape[1])
    return lam * own[:, :width] + (1 - lam) * other[:, :width], common, partner, lam
