"""Bad input through ``train.py``: one clear message, a non-zero exit, nothing half-written.

Each case runs the real entry point (``train.py``'s Hydra main) in this process — the same code
path as the command line without paying the import time per case; test_cli.py covers the
subprocess itself.
"""

from __future__ import annotations

import errno
import runpy
import shutil
import sqlite3
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PROJECT_ROOT, free_port, recording_text, write_dataset, zip_folder
from hydra.core.global_hydra import GlobalHydra

import gesture_rnn

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast

GOOD_ROWS = recording_text(np.ones((5, 3)))
SHORT_ROW = GOOD_ROWS + "1 2 3\n"  # line 6 has 3 columns instead of 6


def dataset_with(tmp_path: Path, bad_text: str) -> Path:
    """The synthetic layout (one user) with U01/01/01.txt replaced by ``bad_text``."""
    folder = write_dataset(tmp_path / "bad", users=("U01",), repetitions=2)
    (folder / "U01" / "01" / "01.txt").write_text(bad_text)
    return zip_folder(folder, tmp_path / "bad.zip")


def run_train_py(tmp_path: Path, overrides: list[str], capfd) -> tuple[int, list[str]]:
    argv = [
        "train.py", f"paths.root_dir={tmp_path}", f"data.cache_dir={tmp_path}/cache", "model.net.hidden=8",
        "trainer.max_epochs=1", "console=quiet",
        "hydra.job_logging.root.level=ERROR", *overrides,
    ]  # fmt: skip
    capfd.readouterr()  # only what this command writes
    saved_argv = sys.argv
    sys.argv = argv
    GlobalHydra.instance().clear()
    try:
        runpy.run_path(str(PROJECT_ROOT / "train.py"), run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
    err = capfd.readouterr().err
    return code, [line for line in err.splitlines() if line.strip() and not line.startswith("[")]


class _Code:
    def __reduce__(self):
        return (print, ("unpickled",))


def pickled_checkpoint(tmp_path: Path) -> Path:
    """A file torch.load(weights_only=False) would run code from."""
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"net": _Code()}}, path)
    return path


def foreign_checkpoint(tmp_path: Path) -> Path:
    """Plain tensors, but not a checkpoint of this project (no hyper_parameters)."""
    path = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "epoch": 3}, path)
    return path


def zip_with_two_roots(tmp_path: Path) -> Path:
    """The dataset twice in one zip, under two folders: every sequence would count double."""
    folder = write_dataset(tmp_path / "two", users=("U01", "U02"), repetitions=2)
    archive = zip_folder(folder, tmp_path / "two.zip")
    with zipfile.ZipFile(archive, "a") as bundle:
        for path in sorted(folder.rglob("*.txt")):
            bundle.write(path, f"copy/{path.relative_to(folder.parent).as_posix()}")
    return archive


def truncated_zip(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def not_a_dataset_zip(target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as bundle:
        bundle.writestr("holiday/photo.txt", "1 2 3\n")
    return target


# (id, overrides given tmp_path and the synthetic zip, expected text in the message)
CASES = [
    ("missing data path", lambda t, z: [f"data.path={t}/nope.zip"], "dataset not found"),
    ("not zip or folder", lambda t, z: [f"data.path={PROJECT_ROOT / 'README.md'}"], "nor a zip"),
    ("wrong layout", lambda t, z: [f"data.path={not_a_dataset_zip(t / 'x.zip')}"], "gestures-dataset"),
    (
        "wrong checksum",
        lambda t, z: ["data.path=null", f"data.url=file://{z}", "data.md5=0123456789abcdef0123456789abcdef"],
        "md5",
    ),
    ("truncated zip", lambda t, z: [f"data.path={truncated_zip(z, t / 'cut.zip')}"], "damaged zip"),
    (
        "non-numeric value",
        lambda t, z: [f"data.path={dataset_with(t, GOOD_ROWS.replace('1.000000', 'abc', 1))}"],
        "01.txt, line 1: non-numeric",
    ),
    (
        "wrong column count",
        lambda t, z: [f"data.path={dataset_with(t, SHORT_ROW)}"],
        "01.txt, line 6",
    ),
    (
        "fewer than 2 rows",
        lambda t, z: [f"data.path={dataset_with(t, GOOD_ROWS.splitlines()[0])}"],
        "a recording has 2..1000 rows",
    ),
    (
        "NaN value",
        lambda t, z: [f"data.path={dataset_with(t, GOOD_ROWS.replace('1.000000', 'nan', 1))}"],
        "01.txt, line 1: acceleration is null, NaN",
    ),
    ("unknown key", lambda t, z: [f"data.path={z}", "model.hiden=3"], "model.hiden"),
    ("unknown group option", lambda t, z: [f"data.path={z}", "model=lstm"], "model/lstm"),
    # one out-of-range value per kind of key; every rule's message is tested in test_config.py
    ("hidden 0", lambda t, z: [f"data.path={z}", "model.net.hidden=0"], "model.net.hidden=0 is invalid"),
    ("test fraction 0", lambda t, z: [f"data.path={z}", "data.test_fraction=0"], "in (0, 1)"),
    (
        "unknown test user",
        lambda t, z: [f"data.path={z}", "data.split=users", "data.test_users=[U99]"],
        "U99",
    ),
    ("two dataset roots", lambda t, z: [f"data.path={zip_with_two_roots(t)}"], "recordings under 2 folders"),
    (
        "learning rate 0",
        lambda t, z: [f"data.path={z}", "model.optimizer.lr=0"],
        "model.optimizer.lr=0 is invalid",
    ),
    (
        "negative seed",
        lambda t, z: [f"data.path={z}", "seed=-1"],
        "seed=-1 is invalid: it must be an integer in",
    ),
    (
        "validation leaves too few training sequences",
        lambda t, z: [f"data.path={z}", "data.val_fraction=0.99"],
        "leave 0 training sequences, fewer than 20 (one per gesture)",
    ),
    ("checkpoint is a folder", lambda t, z: [f"data.path={z}", f"ckpt_path={t}"], "is a folder"),
    (
        "checkpoint with pickled code",
        lambda t, z: [f"data.path={z}", f"ckpt_path={pickled_checkpoint(t)}"],
        "is not a checkpoint written by train.py: unsafe or unknown content",
    ),
    (
        "checkpoint-shaped file that is not Lightning's",
        lambda t, z: [f"data.path={z}", f"ckpt_path={foreign_checkpoint(t)}"],
        "is not a checkpoint written by train.py: unsafe or unknown content",
    ),
    ("missing checkpoint", lambda t, z: [f"data.path={z}", f"ckpt_path={t}/no.ckpt"], "does not exist"),
    (
        "not a checkpoint",
        lambda t, z: [f"data.path={z}", f"ckpt_path={PROJECT_ROOT / 'README.md'}"],
        "not a checkpoint",
    ),
    (
        "unreachable tracking server",
        lambda t, z: [f"data.path={z}", f"logger.mlflow.tracking_uri=http://127.0.0.1:{free_port()}"],
        "is unreachable",
    ),
]


def assert_nothing_half_written(tmp_path: Path) -> None:
    """The cache holds only complete files: parsed arrays that load, nothing temporary."""
    cache = tmp_path / "cache"
    for path in cache.rglob("*") if cache.exists() else []:
        assert not path.name.startswith(".") and "tmp" not in path.name, f"left behind: {path}"
        if path.is_file():
            assert path.suffix == ".npz", f"unexpected file in the cache: {path}"
            np.load(path).close()
    store = tmp_path / "outputs" / "mlflow.db"
    if store.exists():
        with sqlite3.connect(store) as db:
            running = db.execute("select run_uuid from runs where status = 'RUNNING'").fetchall()
        assert running == [], "no MLflow run is left RUNNING"


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_error(synthetic_zip, tmp_path, capfd, overrides, expected):
    code, lines = run_train_py(tmp_path, overrides(tmp_path, synthetic_zip), capfd)
    assert code != 0
    assert not any("Traceback" in line for line in lines)
    assert code == 2 and lines[0].startswith("error: ") and len(lines) <= 2, lines
    assert expected in "\n".join(lines)
    assert_nothing_half_written(tmp_path)


def test_a_checkpoint_of_another_model_size_is_refused_before_training(train_config, tmp_path, capfd):
    metrics = gesture_rnn.train(train_config("model.net.hidden=8", "trainer.max_epochs=1", "logger=none"))
    assert metrics["test/acc"] >= 0
    (checkpoint,) = (tmp_path / "outputs" / "run" / "checkpoints").glob("last.ckpt")
    other = tmp_path / "other"
    code, lines = run_train_py(
        other, [f"ckpt_path={checkpoint}", f"data.path={tmp_path}/unused.zip", "model.net.hidden=16"], capfd
    )
    assert code == 2
    assert lines == [
        f"error: ckpt_path={checkpoint} was trained with another model: model.net.hidden=16 (checkpoint: 8); "
        "resume with the run's own model settings"
    ]
    assert not (other / "outputs" / "mlflow.db").exists(), "refused before any MLflow run was created"


def test_a_resume_that_does_not_continue_the_checkpoints_record_is_refused(
    synthetic_zip, synthetic_folder, tmp_path, capfd
):
    """Another split, other data, a personalised checkpoint or another MLflow store: one line,
    before training, nothing moved out of or into the run's folder."""
    code, _ = run_train_py(
        tmp_path, [f"data.path={synthetic_zip}", "data.split=users", "data.test_users=[U03]"], capfd
    )
    assert code == 0
    (checkpoint,) = (tmp_path / "outputs").rglob("checkpoints/last.ckpt")
    run_dir = checkpoint.parent.parent
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    other_data = tmp_path / "edited" / synthetic_folder.name
    shutil.copytree(synthetic_folder, other_data)
    edited = next(other_data.rglob("U01/01/01.txt"))
    edited.write_text(edited.read_text().replace("1", "2", 1))
    personalised = tmp_path / "me.ckpt"
    content = torch.load(checkpoint, weights_only=True)
    torch.save(
        {**content, "personalization": {"user": "U03", "base_checkpoint": str(checkpoint)}}, personalised
    )
    resumed = [f"ckpt_path={checkpoint}", "trainer.max_epochs=2", "data.split=users"]
    cases = [
        ([*resumed, f"data.path={synthetic_zip}", "data.test_users=[U01]"],
         "was trained on another split: data.test_users=['U01'] (checkpoint: ['U03'])"),
        ([*resumed, f"data.path={other_data}", "data.test_users=[U03]"], "was trained on data with md5"),
        ([f"ckpt_path={personalised}", f"data.path={synthetic_zip}", *resumed[2:], "data.test_users=[U03]"],
         "is a personalised model (personalize.py, user U03)"),
        ([*resumed, f"data.path={synthetic_zip}", "data.test_users=[U03]",
          f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/elsewhere.db"], "which the store sqlite:///"),
    ]  # fmt: skip
    for overrides, expected in cases:
        code, lines = run_train_py(tmp_path, overrides, capfd)
        assert code == 2 and len(lines) == 1 and expected in lines[0], lines
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before, "the run's folder as it was"
    assert not (tmp_path / "elsewhere.db").exists()
    assert_nothing_half_written(tmp_path)


def test_a_full_disk_leaves_no_truncated_checkpoint_and_says_where(
    synthetic_zip, tmp_path, capfd, monkeypatch
):
    """Simulated ENOSPC on the second checkpoint file: half its bytes are written, then the write
    fails. The first stays whole, no .ckpt is truncated, one line says where, the run is FAILED."""
    from contextlib import contextmanager

    from gesture_rnn.training import checkpoint_io

    real_atomic_write = checkpoint_io.atomic_write
    writes = []

    @contextmanager
    def disk_fills_on_the_second_write(path, mode, what):
        with real_atomic_write(path, mode, what) as handle:
            writes.append(path)
            if len(writes) >= 2:  # epoch_000.ckpt is written whole, then last.ckpt fails
                real_write = handle.write
                handle.write = lambda data: (real_write(bytes(data)[: len(data) // 2]), _full())[1]
            yield handle

    def _full():
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_io, "atomic_write", disk_fills_on_the_second_write)
    code, lines = run_train_py(tmp_path, [f"data.path={synthetic_zip}"], capfd)
    assert code == 2
    assert lines[-1].startswith("error: No space left on device: writing checkpoint ")
    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    assert str(run_dir / "checkpoints") in lines[-1]
    for checkpoint in (run_dir / "checkpoints").iterdir():  # only whole checkpoints, no temp files
        assert checkpoint.name == "epoch_000.ckpt"
        assert torch.load(checkpoint, weights_only=True)["epoch"] == 0
    with sqlite3.connect(tmp_path / "outputs" / "mlflow.db") as db:
        assert db.execute("select status from runs").fetchall() == [("FAILED",)]
