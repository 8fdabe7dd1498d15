"""Temperature scaling: fitted on held-out logits it undoes over-confidence; checkpoints written
before calibration load with temperature 1."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from gesture_rnn.models.calibration import fit_temperature
from gesture_rnn.models.checkpoint import NET_PREFIX, load_net
from gesture_rnn.models.nets import GRUNet


def test_temperature_scaling_lowers_the_nll_of_an_overconfident_model():
    generator = torch.Generator().manual_seed(0)
    calibrated = torch.randn(2000, 20, generator=generator) * 2
    labels = torch.multinomial(torch.softmax(calibrated, dim=1), 1, generator=generator).squeeze(1)
    overconfident = calibrated * 4  # same ranking, probabilities pushed towards 0 and 1
    temperature = fit_temperature(overconfident, labels)
    assert 3.2 < temperature < 4.8, "about the factor that made it overconfident"
    before = F.cross_entropy(overconfident, labels)
    after = F.cross_entropy(overconfident / temperature, labels)
    assert after < 0.8 * before
    assert torch.equal((overconfident / temperature).argmax(1), overconfident.argmax(1)), "same answers"


def test_a_checkpoint_written_before_calibration_loads_with_temperature_one(tmp_path):
    net = GRUNet(hidden=4, layers=1, dropout=0.0, bidirectional=False, packed=True)
    state = {NET_PREFIX + k: v for k, v in net.state_dict().items() if k != "temperature"}
    settings = {"_target_": "gesture_rnn.models.nets.GRUNet", "hidden": 4, "layers": 1, "dropout": 0.0}
    settings.update(bidirectional=False, packed=True)
    torch.save({"hyper_parameters": {"net": settings}, "state_dict": state}, tmp_path / "old.ckpt")
    assert float(load_net(tmp_path / "old.ckpt").temperature) == 1.0
