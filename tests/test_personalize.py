"""personalize.py: shots drawn by seed and never evaluated; a person whose gestures differ from
everyone's is learned from a few recordings; bad input gets one clear line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SYNTH_GESTURES, compose_train_config, recording_text, synthetic_sequence, write_dataset
from hydra.core.global_hydra import GlobalHydra
from mlflow import MlflowClient
from omegaconf import OmegaConf

import gesture_rnn
from gesture_rnn.commands.personalize import draw_shots, personalize, personalize_ensemble, run_personalize
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.models.checkpoint import load_net, read_checkpoint


def test_shots_are_disjoint_from_evaluation_and_reproducible_per_seed():
    labels = np.repeat(np.arange(20), 5)
    adapt, evaluate = draw_shots(labels, 3, seed=7, user="U03")
    assert len(adapt) == 60 and len(evaluate) == 40 and not set(adapt) & set(evaluate)
    assert all((labels[adapt] == g).sum() == 3 for g in range(20)), "three of every gesture"
    again, _ = draw_shots(labels, 3, seed=7, user="U03")
    other, _ = draw_shots(labels, 3, seed=8, user="U03")
    assert np.array_equal(adapt, again) and not np.array_equal(adapt, other)


def test_more_shots_than_a_gesture_allows_is_refused_naming_it():
    labels = np.concatenate([np.repeat(np.arange(20), 4), [5]])
    labels = labels[labels != 9][:-1]  # gesture 10 missing entirely, gesture 6 has 4
    with pytest.raises(DataError, match="shots=4 is invalid for U03: gesture 1 has 4 recording"):
        draw_shots(labels, 4, seed=0, user="U03")
    with pytest.raises(DataError, match="gesture 10 has 0 recording"):
        draw_shots(labels, 1, seed=0, user="U03")


@pytest.fixture(scope="module")
def shifted_dataset(tmp_path_factory) -> Path:
    """U01 and U02 as usual; U03 makes every gesture the way the others make the gesture three
    further on (a person whose movements differ from everyone in the training data)."""
    root = tmp_path_factory.mktemp("shifted")
    base = write_dataset(root, users=("U01", "U02"))
    rng = np.random.default_rng(1)
    for gesture in range(SYNTH_GESTURES):
        folder = base / "U03" / f"{gesture + 1:02d}"
        folder.mkdir(parents=True)
        for rep in range(1, 5):
            shifted = synthetic_sequence((gesture + 3) % SYNTH_GESTURES, rng)
            (folder / f"{rep:02d}.txt").write_text(recording_text(shifted))
    return base


@pytest.fixture(scope="module")
def base_checkpoint(shifted_dataset, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base")
    overrides = [f"data.path={shifted_dataset}", "data.split=users", "data.test_users=[U03]"]
    overrides += ["model.net.hidden=16", "trainer.max_epochs=8", "model.optimizer.lr=0.01", "logger=none"]
    overrides += ["data.val_fraction=0"]
    gesture_rnn.train(compose_train_config(root, overrides))
    GlobalHydra.instance().clear()
    return root / "outputs" / "run" / "checkpoints" / "last.ckpt"


def settings(tmp_path: Path, checkpoint: Path, data: Path, **changes) -> dict:
    base = {
        "ckpt_path": str(checkpoint), "input": None, "data_path": str(data), "cache_dir": str(tmp_path / "c"),
        "user": "U03", "shots": 2, "seed": 0, "method": "head", "steps": 100, "lr": 0.01, "num_threads": 1,
        "out": str(tmp_path / "me.ckpt"), "tracking_uri": None, "artifact_dir": str(tmp_path / "a"),
    }  # fmt: skip
    return OmegaConf.create({**base, **changes})


@pytest.mark.integration  # trains a base model
@pytest.mark.parametrize("method", ["head", "ncm", "all"])
def test_a_shifted_user_is_learned_from_two_recordings_per_gesture(
    shifted_dataset, base_checkpoint, tmp_path, method
):
    steps = {"all": 60}.get(method, 100)
    threads = torch.get_num_threads()
    result = run_personalize(
        settings(tmp_path, base_checkpoint, shifted_dataset, method=method, steps=steps, lr=0.01)
    )
    assert torch.get_num_threads() == threads, "num_threads=1 applied to the adaptation only"
    assert result.accuracy_before < 0.3, "the base model mistakes U03's gestures for others"
    assert result.accuracy_after > 0.8 and result.evaluate_count == 40
    saved = read_checkpoint(tmp_path / "me.ckpt")
    assert saved["personalization"]["user"] == "U03" and saved["personalization"]["method"] == method
    net = load_net(tmp_path / "me.ckpt")  # an ordinary checkpoint: weights_only, predict, export
    assert float(net.temperature) == 1.0
    torch.testing.assert_close(net.head.weight, result.net.head.weight)


@pytest.mark.integration  # trains a base model
def test_an_ensemble_is_personalised_member_by_member_on_the_same_shots(
    shifted_dataset, base_checkpoint, tmp_path
):
    from gesture_rnn.data.parsing import load_records

    records = load_records(shifted_dataset, None)
    bases = [load_net(base_checkpoint), load_net(base_checkpoint)]
    with torch.no_grad():
        bases[1].head.weight.mul_(0.5)  # another member
    result = personalize_ensemble(bases, records, "U03", 2, "head", 0, 100, 0.01)
    assert result.accuracy_before < 0.3 and result.accuracy_after > 0.8 and result.evaluate_count == 40
    alone = personalize(bases[1], records, "U03", 2, "head", 0, 100, 0.01)  # the same seed: the same shots
    torch.testing.assert_close(result.net.members[1].head.weight, alone.net.head.weight)
    assert not torch.equal(result.net.members[1].head.weight, bases[1].head.weight), (
        "the bases stay as they were"
    )


@pytest.mark.integration
def test_the_personalisation_is_an_mlflow_run_tagged_with_its_base(
    shifted_dataset, base_checkpoint, tmp_path
):
    (base_checkpoint.parent.parent / "mlflow_run_id.txt").write_text("base123\n")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset, tracking_uri=uri))
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("gestures-personalize").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["base_run_id"] == "base123"
    assert run.data.params["shots"] == "2" and run.data.metrics["accuracy_after"] > 0.8


@pytest.mark.integration
@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"user": "U09"}, DataError, "user=U09 has no recordings here; users in the data: U01, U02, U03"),
        ({"shots": 4}, DataError, "shots=4 is invalid for U03: gesture 1 has 4 recording(s)"),
        ({"shots": 0}, ConfigError, "shots=0 is invalid: it must be an integer >= 1"),
        (
            {"method": "magic"},
            ConfigError,
            "method='magic' is invalid: it must be one of ['head', 'all', 'ncm']",
        ),
        (
            {"user": "U01"},
            ConfigError,
            "user=U01: 80 of their 80 recordings were in the base model's training",
        ),
        ({"num_threads": 0}, ConfigError, "num_threads=0 is invalid: it must be null or an integer >= 1"),
    ],
)
def test_bad_input_is_refused_with_one_clear_line(
    shifted_dataset, base_checkpoint, tmp_path, changes, error, message
):
    with pytest.raises(error) as raised:
        run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset, **changes))
    assert str(raised.value).startswith(message)
    assert not (tmp_path / "me.ckpt").exists(), "nothing written"


@pytest.mark.integration
def test_a_training_user_is_refused_however_the_recordings_arrive(shifted_dataset, base_checkpoint, tmp_path):
    """The guard compares recordings with the base's record, not names: U01's recordings copied
    into a person's folder under another name are still the base model's training data; and a
    personalised model has seen its shots."""
    person = tmp_path / "me" / "U09"
    shutil.copytree(shifted_dataset / "U01", person)
    (person / "01" / "01.txt").write_text(recording_text(synthetic_sequence(5, np.random.default_rng(7))))
    with pytest.raises(ConfigError, match=r"user=U09: 79 of their 80 recordings were in the base model's"):
        run_personalize(
            settings(tmp_path, base_checkpoint, shifted_dataset, input=str(tmp_path / "me"), user=None)
        )
    run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset))  # U03, held out: allowed
    with pytest.raises(ConfigError, match=r"user=U03: 40 of their 80 recordings were in the base model's"):
        run_personalize(
            settings(tmp_path, tmp_path / "me.ckpt", shifted_dataset, out=str(tmp_path / "b.ckpt"))
        )
    base = base_checkpoint.read_bytes()
    with pytest.raises(ConfigError, match=r"out=.* is the base checkpoint itself"):
        run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset, out=str(base_checkpoint)))
    assert base_checkpoint.read_bytes() == base, "the base is never replaced"


@pytest.mark.integration
def test_a_persons_folder_with_unpadded_names_and_a_copy_is_read_and_said(
    shifted_dataset, base_checkpoint, tmp_path, capsys
):
    """U3/7/1.txt is U03/07/01.txt; an exact copy is left out (it could be a shot and evaluated
    too) and said; one recording named both ways is refused."""
    person = tmp_path / "me"
    for file in (shifted_dataset / "U03").rglob("*.txt"):
        target = person / "U3" / str(int(file.parent.name)) / f"{int(file.stem)}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(file, target)
    shutil.copy(person / "U3" / "1" / "1.txt", person / "U3" / "1" / "9.txt")
    result = run_personalize(
        settings(tmp_path, base_checkpoint, shifted_dataset, input=str(person), user=None)
    )
    assert result.adapt_count + result.evaluate_count == 80, "all 80 recordings read, the copy once"
    assert (
        "left out       1 duplicate(s): U3/1/9.txt (a copy of another recording)" in capsys.readouterr().out
    )
    (person / "U3" / "01").mkdir()
    shutil.copy(person / "U3" / "1" / "1.txt", person / "U3" / "01" / "01.txt")
    with pytest.raises(
        DataError, match=r"U3/01/01\.txt and U3/1/1\.txt are both U03, gesture 1, repetition 1"
    ):
        run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset, input=str(person), user=None))


@pytest.mark.integration
def test_a_folder_without_recordings_is_refused(shifted_dataset, base_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no Uxx/yy/zz\.txt sequence files"):
        run_personalize(settings(tmp_path, base_checkpoint, shifted_dataset, input=str(tmp_path / "empty")))
