"""The GRU reads each sequence's real last step: padding never changes a prediction."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from gesture_rnn.models import GRUClassifier


@pytest.mark.parametrize("bidirectional", [False, True])
def test_a_padded_batch_gives_the_same_logits_as_each_sequence_alone(bidirectional):
    torch.manual_seed(0)
    model = GRUClassifier(hidden=16, layers=2, dropout=0.0, bidirectional=bidirectional).eval()
    model.set_normalization(torch.tensor([0.5, -0.2, 9.8]), torch.tensor([2.0, 3.0, 1.5]))
    sequences = [torch.randn(n, 3) for n in (7, 23, 2, 15)]
    lengths = torch.tensor([len(s) for s in sequences])
    with torch.no_grad():
        batched = model(pad_sequence(sequences, batch_first=True), lengths)
        alone = torch.cat([model(s[None], torch.tensor([len(s)])) for s in sequences])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


def test_padding_values_are_never_read():
    torch.manual_seed(0)
    model = GRUClassifier(hidden=8).eval()
    x = torch.randn(3, 12, 3)
    lengths = torch.tensor([12, 5, 9])
    garbage = x.clone()
    for row, length in enumerate(lengths):
        garbage[row, length:] = 1e6
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths), model(garbage, lengths))


def test_normalisation_statistics_travel_in_the_state_dict():
    model = GRUClassifier(hidden=4)
    model.set_normalization(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0]))
    clone = GRUClassifier(hidden=4)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.mean, torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(clone.std, torch.tensor([4.0, 5.0, 6.0]))


def test_optimizer_and_scheduler_are_built_from_config_dicts():
    model = GRUClassifier(
        hidden=4,
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5, "momentum": 0.9},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 3},
    )
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.5
    assert isinstance(configured["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert isinstance(GRUClassifier(hidden=4).configure_optimizers(), torch.optim.Adam)
