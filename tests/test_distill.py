"""Knowledge distillation (``model.distillation``, experiment=watch): the loss, the teacher of
each fold, and the teachers that must be refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import compose_train_config
from hydra.core.global_hydra import GlobalHydra
from torch.nn import functional as F

import gesture_rnn
from gesture_rnn.data import GestureDataModule
from gesture_rnn.errors import ConfigError
from gesture_rnn.models.losses import distillation_loss
from gesture_rnn.training.distillation import attach_soft_targets, teacher_checkpoints, teacher_logits


def _case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(6, 20, generator=generator, requires_grad=True)
    labels = torch.randint(0, 20, (6,), generator=generator)
    teachers = torch.softmax(torch.randn(6, 20, generator=generator), dim=1)
    return logits, labels, teachers


def test_at_weight_zero_the_loss_is_cross_entropy_and_the_teachers_are_ignored():
    logits, labels, teachers = _case()
    _, _, others = _case(1)
    plain = F.cross_entropy(logits, labels)
    assert torch.equal(distillation_loss(logits, labels, teachers, 0.0, 4.0), plain)
    assert torch.equal(distillation_loss(logits, labels, others, 0.0, 4.0), plain)
    assert torch.equal(distillation_loss(logits, labels, None, 0.7, 4.0), plain)
    # with weight, the teachers' answer counts
    assert distillation_loss(logits, labels, teachers, 0.5, 4.0) != distillation_loss(
        logits, labels, others, 0.5, 4.0
    )


def test_at_weight_one_the_student_moves_towards_the_teachers_softened_answer():
    logits, labels, teachers = _case()
    agreeing = torch.softmax(logits.detach() / 3.0, dim=1)
    assert distillation_loss(logits, labels, agreeing, 1.0, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    loss = distillation_loss(logits, labels, teachers, 1.0, 3.0)
    loss.backward()
    stepped = logits.detach() - 0.5 * logits.grad
    assert distillation_loss(stepped, labels, teachers, 1.0, 3.0) < loss


@pytest.fixture(scope="module")
def teachers(synthetic_zip, tmp_path_factory) -> Path:
    """A folder of two tiny teacher runs: one held out U03, one held out U01."""
    root = tmp_path_factory.mktemp("teachers")
    for name, user in (("0", "U03"), ("1", "U01")):
        overrides = [f"data.path={synthetic_zip}", "data.split=users", f"data.test_users=[{user}]"]
        overrides += ["model.net.hidden=8", "trainer.max_epochs=1", "logger=none", "log_model=false"]
        gesture_rnn.train(compose_train_config(root, [*overrides, "data.val_fraction=0"], f"sweep/{name}"))
        GlobalHydra.instance().clear()
    return root / "sweep"


integration = pytest.mark.integration  # trains: not in make test-fast


@integration
def test_a_folder_of_runs_gives_each_fold_the_teacher_that_held_its_user_out(teachers):
    (for_u03,) = teacher_checkpoints([str(teachers)], ["U03"])
    (for_u01,) = teacher_checkpoints([str(teachers)], ["U01"])
    assert for_u03.parts[-3] == "0" and for_u01.parts[-3] == "1"
    with pytest.raises(ConfigError, match=r"no run in .* held out \['U02'\]"):
        teacher_checkpoints([str(teachers)], ["U02"])
    with pytest.raises(ConfigError, match=r"model\.distillation\.teachers: .*missing does not exist"):
        teacher_checkpoints([str(teachers / "missing")], ["U03"])


@integration
def test_a_teacher_that_trained_on_a_held_out_recording_is_refused(teachers, train_config):
    leaky = teachers / "1" / "checkpoints" / "last.ckpt"  # held out U01: trained on U03
    cfg = train_config("data.split=users", "data.test_users=[U03]", f"model.distillation.teachers=[{leaky}]")
    with pytest.raises(
        ConfigError,
        match=r"trained or selected on \d+ of this run's \d+ test recordings .* held out \['U03'\]",
    ):
        gesture_rnn.train(cfg)
    assert not list(Path(cfg.paths.output_dir).glob("checkpoints/*.ckpt")), "refused before training"


@integration
def test_the_leak_check_uses_the_teachers_own_data_not_its_names(synthetic_folder, train_config, tmp_path):
    """A teacher trained on a copy of the data where U03 and U01 swapped names "held out U03" by
    name but learned U03's recordings: refused, by content."""
    swapped = tmp_path / "swapped" / synthetic_folder.name
    for user in sorted(p.name for p in synthetic_folder.iterdir() if p.is_dir()):
        shutil.copytree(synthetic_folder / user, swapped / {"U01": "U03", "U03": "U01"}.get(user, user))
    overrides = [f"data.path={swapped}", "data.split=users", "data.test_users=[U03]", "data.val_fraction=0"]
    overrides += ["model.net.hidden=8", "trainer.max_epochs=1", "logger=none", "log_model=false"]
    gesture_rnn.train(compose_train_config(tmp_path, overrides, "teacher"))
    GlobalHydra.instance().clear()
    teacher = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    cfg = train_config(
        "data.split=users", "data.test_users=[U03]", f"model.distillation.teachers=[{teacher}]"
    )
    with pytest.raises(ConfigError, match=r"trained or selected on \d+ of this run's \d+ test recordings"):
        gesture_rnn.train(cfg)


@integration
def test_a_teacher_cache_that_does_not_fit_is_recomputed(teachers, synthetic_zip, tmp_path):
    dm = GestureDataModule.from_shipped_config(path=str(synthetic_zip), cache_dir=str(tmp_path))
    dm.setup()
    teacher = teachers / "0" / "checkpoints" / "last.ckpt"
    fresh = teacher_logits(teacher, dm.records.sequences, None)
    teacher_logits(teacher, dm.records.sequences, str(tmp_path))
    (cache,) = (tmp_path / "teachers").glob("*.npy")
    for damaged in (np.roll(fresh, 1, axis=0)[1:], np.where(np.arange(20) == 3, np.nan, fresh)):
        np.save(cache, damaged.astype(np.float32))  # shifted by one recording, then NaN
        np.testing.assert_array_equal(teacher_logits(teacher, dm.records.sequences, str(tmp_path)), fresh)
        np.testing.assert_array_equal(np.load(cache), fresh)  # and the cache is rewritten


@integration
def test_training_batches_carry_the_teachers_averaged_softened_answers(teachers, synthetic_zip, tmp_path):
    dm = GestureDataModule.from_shipped_config(
        path=str(synthetic_zip), cache_dir=str(tmp_path), split="users", test_users=["U03"], val_fraction=0.0
    )
    dm.setup()
    (used,) = attach_soft_targets(dm, [str(teachers)], temperature=2.0)
    assert list((tmp_path / "teachers").glob("*.npy")), "the teacher's logits are cached"
    logits = torch.from_numpy(teacher_logits(used, dm.records.sequences, str(tmp_path)))
    expected = torch.softmax(logits / 2.0, dim=1)[torch.as_tensor(dm.split.train)]
    *_, y, soft = next(iter(dm.train_dataloader()))
    assert soft.shape == (len(y), 20) and torch.allclose(soft.sum(1), torch.ones(len(y)))
    rows = {tuple(row.tolist()) for row in expected}
    assert all(tuple(row.tolist()) in rows for row in soft)  # each one a training sequence's targets


@integration
def test_a_distilled_run_trains_and_says_what_it_learned_from(teachers, train_config):
    cfg = train_config(
        "data.split=users", "data.test_users=[U03]", "data.val_fraction=0", "trainer.max_epochs=1",
        "model.net.hidden=8", "logger=none", f"model.distillation.teachers=[{teachers}]",
        "model.distillation.weight=0.9",
    )  # fmt: skip
    metrics = gesture_rnn.train(cfg)
    assert 0 <= metrics["test/acc"] <= 1
    saved = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["hyper_parameters"]["distillation"]["teachers"] == [str(teachers)]
