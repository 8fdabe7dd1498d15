"""New wearers out of the box: averaged predictions (seed ensembles, test-time rotations) and
the ``make new_wearer`` report from finished folds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.deploy.inference import class_probabilities
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.ensemble import AveragedNet, fixed_rotations
from gesture_rnn.models.nets import GRUNet
from studies.new_wearer import new_wearer_report

USERS = [f"U0{i}" for i in range(1, 9)]


def gru(seed: int, temperature: float) -> GRUNet:
    torch.manual_seed(seed)
    net = GRUNet(hidden=8, layers=1, dropout=0.0, bidirectional=False, packed=True)
    net.temperature.fill_(temperature)
    return net.eval()


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return pad_sequences([torch.randn(n, 3, generator=generator) for n in (12, 30, 51)])


def test_an_ensemble_predicts_the_mean_of_its_members_calibrated_probabilities():
    members = [gru(0, 1.0), gru(1, 2.5)]
    accel, lengths = batch()
    expected = sum(class_probabilities(m, accel, lengths) for m in members) / 2
    ensemble = AveragedNet(members)
    torch.testing.assert_close(class_probabilities(ensemble, accel, lengths), expected)
    with torch.no_grad():  # the export path (no packing) gives the same
        padded = ensemble.probabilities(ensemble.forward_padded(accel, lengths))
    torch.testing.assert_close(padded, expected, rtol=1e-5, atol=1e-6)


def test_test_time_rotations_average_the_turned_recordings_and_repeat_exactly():
    rotations = fixed_rotations(4, 20.0, seed=3)
    torch.testing.assert_close(rotations, fixed_rotations(4, 20.0, seed=3))
    torch.testing.assert_close(rotations[0], torch.eye(3))
    for rotation in rotations:  # proper rotations: the watch is turned, never mirrored or stretched
        torch.testing.assert_close(rotation @ rotation.T, torch.eye(3), atol=1e-6, rtol=0)
        assert torch.linalg.det(rotation) == pytest.approx(1.0, abs=1e-5)
    net = gru(0, 1.3)
    accel, lengths = batch(1)
    expected = sum(class_probabilities(net, accel @ r.T, lengths) for r in rotations) / 4
    averaged = AveragedNet([net], rotations)
    assert averaged.passes == 4
    torch.testing.assert_close(class_probabilities(averaged, accel, lengths), expected)


def test_an_ensemble_needs_a_member_and_a_rotation():
    with pytest.raises(ConfigError, match="at least one trained network"):
        AveragedNet([])
    with pytest.raises(ConfigError, match=r"rotations=0 is invalid: it must be an integer >= 1"):
        fixed_rotations(0, 10.0)


def write_fold(job_dir: Path, user: str, acc: float) -> None:
    job_dir.mkdir(parents=True)
    config = {"data.test_users": [user], "data.split": "users"}
    metrics = {"test/acc": acc, "time/wall_s": 80.0}
    (job_dir / "metrics.json").write_text(json.dumps({"config": config, "metrics": metrics}))


def fake_new_wearer(out: Path) -> None:
    """best and lstm: three seeds each (U07 the weakest) with evaluation.json files, the ensemble
    of both (families.json), and a screen of two candidates."""
    for variant, offset in (("best", 0.0), ("lstm", 0.005)):
        for seed in range(3):
            for i, user in enumerate(USERS):
                acc = 0.97 + offset + seed / 1000 - (0.04 if user == "U07" else 0)
                write_fold(out / "full" / variant / f"seed{seed}" / "part0" / str(i), user, acc)
        users = {
            u: {f"seed{k}+tta": 0.96 + k / 200 - (0.04 if u == "U07" else 0) for k in range(3)} for u in USERS
        }
        for u in USERS:
            users[u].update({"ensemble": 0.98 - (0.02 if u == "U07" else 0), "ensemble+tta": 0.985})
        evaluation = {"users": users, "tta": {"copies": 8, "degrees": 20.0}}
        ms = {"seed0": 0.5, "seed0+tta": 4.0, "ensemble": 1.5, "ensemble+tta": 12.0}
        (out / "full" / variant / "evaluation.json").write_text(
            json.dumps({**evaluation, "ms_per_gesture": ms})
        )
    families = {u: {"ensemble": 0.99, "ensemble+tta": 0.98 - (0.06 if u == "U02" else 0)} for u in USERS}
    families_file = {"variants": ["best", "lstm"], "users": families, "tta": {"copies": 8, "degrees": 20.0}}
    families_file["ms_per_gesture"] = {"ensemble": 3.0, "ensemble+tta": 24.0}
    (out / "full" / "families.json").write_text(json.dumps(families_file))
    for name, acc in (("best", 0.93), ("motion", 0.95)):
        for i, user in enumerate(["U03", "U04", "U07"]):
            write_fold(out / "screen" / name / "seed0" / "part0" / str(i), user, acc + i / 100)


@pytest.mark.integration  # creates an MLflow store
def test_the_report_gives_each_option_against_both_goals_and_logs_it(tmp_path):
    from mlflow import MlflowClient

    fake_new_wearer(tmp_path / "nw")
    report = tmp_path / "reports" / "new_wearer.md"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    new_wearer_report(tmp_path / "nw", ["best", "lstm"], report, "make new_wearer", uri)
    text = report.read_text()
    # single model: fold means 0.965, 0.966, 0.967 over seeds; U07 0.931 (mean over seeds)
    assert (
        "| best, single model (3 seeds) | 0.9660 ± 0.0010 | U07 0.9310 | U07 "
        "| 1 training per fold (80 s), 0.50 ms / gesture |" in text
    )
    assert (
        "| best, ensemble of 3 seeds | 0.9775 | U07 0.9600 | none "
        "| 3 trainings per fold (240 s), 1.50 ms / gesture |" in text
    )
    assert "| best, ensemble + 8 rotations ≤ 20° | 0.9850 | U01 0.9850 | none | 3 trainings" in text
    assert "| lstm, single model (3 seeds) | 0.9710 ± 0.0010 | U07 0.9360 | U07 |" in text
    assert (
        "| best + lstm, ensemble + rotations of every seed | 0.9725 | U02 0.9200 | U02 "
        "| 6 trainings per fold (480 s), 24.00 ms / gesture |" in text
    )
    assert (
        "**best, single model (3 seeds)** — mean ≥ 0.975: missed by 0.0090; no user < 0.95: missed by 0.0190"
        in text
    )
    assert "**best, ensemble of 3 seeds** — mean ≥ 0.975: met; no user < 0.95: met" in text
    assert "**best + lstm, ensemble of every seed** — mean ≥ 0.975: met; no user < 0.95: met" in text
    # the same accuracy goals at a third of the trainings: the cheapest that meets both
    assert (
        "Cheapest option that meets both goals: **best, ensemble of 3 seeds** (3 trainings per fold" in text
    )
    assert "| motion | 0.9500 | 0.9600 | 0.9700 | 0.9600 (+0.0200) | 80 |" in text  # the screen
    assert report.with_suffix(".png").stat().st_size > 10_000
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gestures-new-wearer").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loso_worst/best_ensemble_of_3_seeds"] == pytest.approx(0.96)
    assert run.data.metrics["loso_mean/best_lstm_ensemble_rotations_of_every_seed"] == pytest.approx(0.9725)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"new_wearer.md", "new_wearer.png"}
