"""The GRU reads each sequence's real last step: padding never changes a prediction."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from gesture_rnn.models import GRUClassifier


@pytest.mark.parametrize(("bidirectional", "packed"), [(False, True), (False, False), (True, True)])
def test_a_padded_batch_gives_the_same_logits_as_each_sequence_alone(bidirectional, packed):
    torch.manual_seed(0)
    model = GRUClassifier(hidden=16, layers=2, dropout=0.0, bidirectional=bidirectional, packed=packed)
    model.eval()
    model.set_normalization(torch.tensor([0.5, -0.2, 9.8]), torch.tensor([2.0, 3.0, 1.5]))
    sequences = [torch.randn(n, 3) for n in (7, 23, 2, 15)]
    lengths = torch.tensor([len(s) for s in sequences])
    with torch.no_grad():
        batched = model(pad_sequence(sequences, batch_first=True), lengths)
        alone = torch.cat([model(s[None], torch.tensor([len(s)])) for s in sequences])
    torch.testing.assert_close(batched, alone, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("packed", [True, False])
def test_padding_values_are_never_read(packed):
    torch.manual_seed(0)
    model = GRUClassifier(hidden=8, packed=packed).eval()
    x = torch.randn(3, 12, 3)
    lengths = torch.tensor([12, 5, 9])
    garbage = x.clone()
    for row, length in enumerate(lengths):
        garbage[row, length:] = 1e6
    with torch.no_grad():
        torch.testing.assert_close(model(x, lengths), model(garbage, lengths))


@pytest.mark.parametrize("layers", [1, 2])
def test_padded_and_packed_paths_give_the_same_logits_and_gradients(layers):
    torch.manual_seed(0)
    packed = GRUClassifier(hidden=12, layers=layers, dropout=0.0, packed=True)
    padded = GRUClassifier(hidden=12, layers=layers, dropout=0.0, packed=False)
    padded.load_state_dict(packed.state_dict())
    x, lengths, y = torch.randn(5, 17, 3), torch.tensor([17, 3, 9, 2, 11]), torch.tensor([0, 4, 19, 7, 7])
    for model in (packed, padded):
        model.loss_fn(model(x, lengths), y).backward()
    torch.testing.assert_close(padded(x, lengths), packed(x, lengths))
    for (name, a), b in zip(packed.named_parameters(), padded.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


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
