"""Networks read each sequence's real last step (padding never changes a prediction); the
classifier builds its network and optimizer from plain config dicts."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pad_sequence

from gesture_rnn.errors import ConfigError
from gesture_rnn.models import GestureClassifier, GRUNet

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def gru(hidden: int, layers: int = 1, bidirectional: bool = False, packed: bool = True) -> GRUNet:
    return GRUNet(hidden=hidden, layers=layers, dropout=0.0, bidirectional=bidirectional, packed=packed)


@pytest.mark.parametrize(("bidirectional", "packed"), [(False, True), (False, False), (True, True)])
def test_a_padded_batch_gives_the_same_logits_as_each_sequence_alone(bidirectional, packed):
    torch.manual_seed(0)
    model = gru(16, 2, bidirectional, packed)
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
    model = gru(8, packed=packed).eval()
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
    packed = gru(12, layers, packed=True)
    padded = gru(12, layers, packed=False)
    padded.load_state_dict(packed.state_dict())
    x, lengths, y = torch.randn(5, 17, 3), torch.tensor([17, 3, 9, 2, 11]), torch.tensor([0, 4, 19, 7, 7])
    for model in (packed, padded):
        torch.nn.functional.cross_entropy(model(x, lengths), y).backward()
    torch.testing.assert_close(padded(x, lengths), packed(x, lengths))
    for (name, a), b in zip(packed.named_parameters(), padded.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_normalisation_statistics_travel_in_the_state_dict():
    model = gru(4)
    model.set_normalization(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 6.0]))
    clone = gru(4)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.mean, torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(clone.std, torch.tensor([4.0, 5.0, 6.0]))


def test_optimizer_and_scheduler_are_built_from_config_dicts():
    net = {"_target_": "gesture_rnn.models.nets.GRUNet", "hidden": 4, "layers": 1, "dropout": 0.0,
           "bidirectional": False, "packed": True}  # fmt: skip
    model = GestureClassifier(
        net=net,
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.5, "momentum": 0.9},
        scheduler={"_target_": "torch.optim.lr_scheduler.StepLR", "_partial_": True, "step_size": 3},
    )
    configured = model.configure_optimizers()
    optimizer = configured["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.5
    assert isinstance(configured["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.StepLR)
    assert isinstance(model.net, GRUNet) and model.hparams.net == net, "rebuilt from the checkpoint's hparams"
    assert isinstance(GestureClassifier(net=gru(4), optimizer=ADAM).configure_optimizers(), torch.optim.Adam)


def test_only_this_projects_networks_are_built_from_a_config():
    with pytest.raises(ConfigError, match=r"model.net._target_='os.system' is not a network of this project"):
        GestureClassifier(net={"_target_": "os.system", "command": "true"}, optimizer=ADAM)


def test_the_export_path_of_a_bidirectional_gru_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"model\.net\.bidirectional=false"):
        gru(4, bidirectional=True).forward_padded(torch.randn(1, 5, 3), torch.tensor([5]))


def test_label_smoothing_softens_the_training_loss_only():
    """model.label_smoothing=s trains on (1 - s) * NLL + s * the mean of -log p over classes;
    the validation and test losses stay the plain NLL, comparable with unsmoothed runs."""
    torch.manual_seed(0)
    smoothing = 0.2
    model = GestureClassifier(net=gru(4), optimizer=ADAM, label_smoothing=smoothing)
    logits, labels = torch.randn(6, 20), torch.randint(0, 20, (6,))
    log_p = torch.log_softmax(logits, dim=1)
    nll = -log_p[torch.arange(6), labels].mean()
    expected = (1 - smoothing) * nll + smoothing * (-log_p.mean(dim=1)).mean()
    torch.testing.assert_close(model._training_loss(logits, labels, None), expected)
    torch.testing.assert_close(model.criterion(logits, labels), nll)
    assert GestureClassifier(net=gru(4), optimizer=ADAM).hparams.label_smoothing == 0.0


def test_mixup_mixes_each_recording_with_its_partner_resampled_to_the_longer_length():
    """model.mixup=α: a pair of recordings of different lengths is mixed over the longer one's
    steps (each stretched end to end, as the time warp does) and the loss weighs both labels."""
    from gesture_rnn.data.augment import time_warp
    from gesture_rnn.models.losses import mixed_batch

    torch.manual_seed(3)
    sequences = [torch.randn(n, 3) for n in (4, 9, 6)]
    batch, lengths = pad_sequence(sequences, batch_first=True), torch.tensor([4, 9, 6])
    mixed, new_lengths, partner, lam = mixed_batch(batch, lengths, alpha=0.4)
    assert 0 < lam < 1 and sorted(partner.tolist()) == [0, 1, 2]
    for row, other in enumerate(partner.tolist()):
        steps = max(len(sequences[row]), len(sequences[other]))
        assert new_lengths[row] == steps
        own, theirs = (time_warp(sequences[i], steps / len(sequences[i])) for i in (row, other))
        torch.testing.assert_close(mixed[row, :steps], lam * own + (1 - lam) * theirs)
    model = GestureClassifier(net=gru(4), optimizer=ADAM, mixup=0.4)
    labels = torch.tensor([2, 7, 11])
    torch.manual_seed(0)
    loss = model.training_step((batch, lengths, labels), 0)
    torch.manual_seed(0)
    x, steps, partner, lam = mixed_batch(batch, lengths, 0.4)
    with torch.no_grad():
        logits = model.net(x, steps)
    expected = lam * model.criterion(logits, labels) + (1 - lam) * model.criterion(logits, labels[partner])
    torch.testing.assert_close(loss.detach(), expected)
    with pytest.raises(
        ConfigError, match=r"model\.mixup and model\.distillation\.teachers exclude each other"
    ):
        GestureClassifier(net=gru(4), optimizer=ADAM, mixup=0.2, distillation={"teachers": ["t.ckpt"]})
