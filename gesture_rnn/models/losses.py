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
