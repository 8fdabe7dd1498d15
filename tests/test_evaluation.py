"""Evaluation artifacts, duplicate handling, leave-one-user-out folds, reports, evaluate.py."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import PROJECT_ROOT, SYNTH_USERS, compose_train_config, zip_folder

import gesture_rnn
from gesture_rnn.data import GestureDataModule
from gesture_rnn.tracking.trials import find_trials
from gesture_rnn.training.artifacts import confusion_matrix, per_class_scores, per_user_accuracy
from studies.reports import ablation_report, loso_report, study_report

TINY = [
    "model.net.hidden=16",
    "trainer.max_epochs=2",
    "data.batch_size=16",
    "model.optimizer.lr=0.01",
    "logger=none",
]


def test_confusion_matrix_and_scores():
    true = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    matrix = confusion_matrix(true, predicted, num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    scores = per_class_scores(matrix)
    assert scores[1]["gesture"] == 2 and scores[1]["precision"] == pytest.approx(2 / 3)
    assert scores[1]["recall"] == 1.0 and scores[2]["f1"] == 0.0
    users = np.array(["U01", "U01", "U02", "U02", "U02"])
    assert per_user_accuracy(users, true, predicted) == [
        {"user": "U01", "accuracy": 0.5, "sequences": 2},
        {"user": "U02", "accuracy": pytest.approx(2 / 3), "sequences": 3},
    ]


@pytest.fixture
def zip_with_duplicates(synthetic_folder, tmp_path):
    """The synthetic data plus the real dataset's quirk: one recording under two gestures, and an
    exact duplicate under the same gesture."""
    copy = tmp_path / "dups" / "gestures-dataset"
    shutil.copytree(synthetic_folder, copy)
    shutil.copy(copy / "U02/13/04.txt", copy / "U02/14/05.txt")  # conflicting labels
    shutil.copy(copy / "U01/03/01.txt", copy / "U01/03/05.txt")  # same label
    return zip_folder(copy, tmp_path / "dups.zip")


def test_conflicting_duplicates_are_dropped_and_reported(zip_with_duplicates, tmp_path):
    dm = GestureDataModule.from_shipped_config(
        path=str(zip_with_duplicates), cache_dir=str(tmp_path / "cache")
    )
    dm.setup()
    assert dm.dropped_duplicates == [
        "gestures-dataset/U02/13/04.txt (gesture 13)",
        "gestures-dataset/U02/14/05.txt (gesture 14)",
    ]
    assert "gestures-dataset/U02/13/04.txt" not in dm.records.files


def test_a_switch_keeps_conflicting_duplicates(zip_with_duplicates, tmp_path):
    dm = GestureDataModule.from_shipped_config(
        path=str(zip_with_duplicates), cache_dir=str(tmp_path / "cache"), drop_conflicting_duplicates=False
    )
    dm.setup()
    assert dm.dropped_duplicates == [] and "gestures-dataset/U02/14/05.txt" in dm.records.files


@pytest.mark.parametrize("seed", range(6))
def test_duplicates_never_straddle_train_and_test(zip_with_duplicates, tmp_path, seed):
    dm = GestureDataModule.from_shipped_config(
        path=str(zip_with_duplicates),
        cache_dir=str(tmp_path / "cache"),
        drop_conflicting_duplicates=False,
        val_fraction=0.2,
        test_fraction=0.5,
        seed=seed,
    )
    dm.setup()
    files = dm.records.files
    for pair in (("U01/03/01.txt", "U01/03/05.txt"), ("U02/13/04.txt", "U02/14/05.txt")):
        members = [files.index(f"gestures-dataset/{name}") for name in pair]
        parts = [name for name in ("train", "val", "test") if set(members) & set(getattr(dm.split, name))]
        assert len(parts) == 1, f"{pair} split across {parts}"


@pytest.mark.parametrize("user", SYNTH_USERS)
def test_leave_one_user_out_folds_keep_the_user_out_of_training_and_validation(synthetic_zip, tmp_path, user):
    dm = GestureDataModule.from_shipped_config(
        path=str(synthetic_zip),
        cache_dir=str(tmp_path / "cache"),
        split="users",
        test_users=[user],
        val_fraction=0.2,
    )
    dm.setup()
    users = dm.records.users
    assert set(users[dm.split.test]) == {user}
    assert user not in set(users[dm.split.train]) and user not in set(users[dm.split.val])
    assert len(dm.split.val) > 0, "model selection has validation data from the other users"


@pytest.mark.integration
def test_reports_from_small_synthetic_runs(synthetic_zip, tmp_path):
    def run(run_dir: str, *overrides: str) -> None:
        gesture_rnn.train(
            compose_train_config(tmp_path, [f"data.path={synthetic_zip}", *TINY, *overrides], run_dir)
        )

    for job, seed in enumerate((0, 1)):
        run(f"study/{job}", f"seed={seed}", "experiment=study_default", "trainer.max_epochs=3", *TINY[:1])
    for job, user in enumerate(SYNTH_USERS):
        run(f"users/{job}", "data.split=users", f"data.test_users=[{user}]")
    run("random/0", "seed=0")

    study = tmp_path / "reports" / "study.md"
    study.parent.mkdir()
    runs = find_trials(tmp_path / "study")
    study_report(runs, "make reproduce", study)
    text = study.read_text()
    accs = [r["metrics"]["test/acc"] for r in runs]
    assert "| 16/1/0.1 | 3 | – |" in text and f"{np.mean(accs):.4f} ± {np.std(accs, ddof=1):.4f}" in text
    assert "Generated by `make reproduce`" in text and "Machine:" in text
    assert (tmp_path / "reports" / "study_accuracy.png").stat().st_size > 0

    loso = tmp_path / "reports" / "loso.md"
    loso_report(find_trials(tmp_path / "users"), find_trials(tmp_path / "random"), "make loso", loso)
    rows = [line for line in loso.read_text().splitlines() if line.startswith("| U0")]
    assert [row.split("|")[1].strip() for row in rows] == list(SYNTH_USERS)
    user_accs = [float(row.split("|")[2]) for row in rows]
    assert (
        f"**{np.mean(user_accs):.4f} ± {np.std(user_accs, ddof=1):.4f}** (over 3 users)" in loso.read_text()
    )

    for job, user in enumerate(SYNTH_USERS[:2]):
        run(f"rotated/{job}", "data.split=users", f"data.test_users=[{user}]", "data.augment.rotate_deg=20")
    ablation = tmp_path / "reports" / "ablation.md"
    baseline = [r for r in find_trials(tmp_path / "users") if r["config"]["data.test_users"] != ["U03"]]
    groups = {"baseline": baseline, "rotated": find_trials(tmp_path / "rotated")}
    ablation_report(groups, "make ablation", ablation)
    table = [line.split("|") for line in ablation.read_text().splitlines() if line.startswith("| ")]
    rows = {cells[1].strip(): cells for cells in table}
    rotated_acc = [r["metrics"]["test/acc"] for r in find_trials(tmp_path / "rotated")]
    base_acc = [r["metrics"]["test/acc"] for r in baseline]
    assert rows["rotated"][2].strip() == "LOSO U01, U02" == rows["baseline"][2].strip()
    assert rows["rotated"][4].strip() == f"{np.mean(rotated_acc) - np.mean(base_acc):+.4f}"


@pytest.mark.integration
def test_evaluate_py_tests_a_checkpoint_without_training(synthetic_zip, tmp_path):
    metrics = gesture_rnn.train(compose_train_config(tmp_path, [f"data.path={synthetic_zip}", *TINY]))
    checkpoint = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    out = tmp_path / "evaluated"
    command = [sys.executable, str(PROJECT_ROOT / "evaluate.py"), f"ckpt_path={checkpoint}",
               f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", f"hydra.run.dir={out}",
               f"paths.root_dir={tmp_path}", "logger=none"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"test accuracy  {metrics['test/acc']:.4f}" in result.stdout, (
        "the same model on the same test part"
    )
    with (out / "evaluation" / "per_user.csv").open() as handle:
        assert [row["user"] for row in csv.DictReader(handle)] == list(SYNTH_USERS)
    assert (out / "evaluation" / "confusion_matrix.png").is_file()

    missing = subprocess.run(
        [*command[:2], f"ckpt_path={tmp_path}/nope.ckpt"], capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: ckpt_path={tmp_path}/nope.ckpt does not exist"
    # evaluate.yaml holds only what evaluation uses: a training-only key is an error, not ignored
    unused = subprocess.run([*command, "model.net.hidden=32"], capture_output=True, text=True)
    assert unused.returncode == 2 and "model" in unused.stderr.splitlines()[0]
