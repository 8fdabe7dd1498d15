"""Temperature scaling (Guo et al., 2017): one scalar T fitted on validation logits so that
softmax(logits / T) is calibrated — a probability of 0.9 is right about 90 % of the time. T does not
change which gesture is predicted, only how sure the model says it is."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 that minimises the negative log-likelihood of ``labels`` under
    softmax(logits / T) (optimised over log T, so T stays positive). Works inside Lightning's
    test loop, which runs in inference mode."""
    with torch.inference_mode(False), torch.enable_grad():
        logits, labels = logits.detach().clone().double(), labels.detach().clone()
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            loss = F.cross_entropy(logits / log_t.exp(), labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return float(log_t.detach().exp())


@torch.no_grad()
def logits_and_labels(
    net: torch.nn.Module, loader, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's logits (eval mode) and the labels for every batch of ``loader``."""
    was_training = net.training
    net.eval()
    try:
        logits, labels = [], []
        for accel, lengths, y in loader:
            logits.append(net(accel.to(device), lengths).cpu())
            labels.append(y)
        return torch.cat(logits), torch.cat(labels)
    finally:
        net.train(was_training)
