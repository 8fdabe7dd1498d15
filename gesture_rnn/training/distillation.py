"""Knowledge distillation's teachers: a small student learns from the labels and from the softened,
averaged predictions of trained teachers (Hinton et al. 2015) — how a watch-size network gets
close to the 600k-parameter GRU ensemble on people it never saw.

Teachers are checkpoints, or run / multirun folders from which the run that held out this run's
test users is picked. A teacher that trained or validated on any of this run's test recordings
is refused: its soft targets would carry the held-out answers into the student. Teacher logits
over the whole dataset are computed once per checkpoint and cached (``<cache_dir>/teachers``),
so a leave-one-user-out of students pays for the teachers once. The loss is
``gesture_rnn.models.losses.distillation_loss``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.data.datamodule import GestureDataModule
from gesture_rnn.data.facts import NUM_CLASSES
from gesture_rnn.data.fingerprints import fingerprints
from gesture_rnn.errors import ConfigError, StorageError
from gesture_rnn.models.checkpoint import load_net, read_checkpoint, seen_recordings
from gesture_rnn.tracking.trials import tested_checkpoint
from gesture_rnn.utils.atomic import atomic_write

log = logging.getLogger(__name__)

KEY = "model.distillation.teachers"


def run_checkpoints(folder: Path) -> list[Path]:
    """The tested checkpoint of every run below ``folder`` (a run, a multirun, or a folder of
    multirun parts such as ``make new_wearer``'s ``seed0/part0``, ``seed0/part1``)."""
    jobs = sorted(p.parent for p in folder.rglob("checkpoints") if p.is_dir())
    return [ckpt for ckpt in map(tested_checkpoint, jobs) if ckpt.is_file()]


def _held_out_users(checkpoint: dict[str, Any]) -> set[str]:
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    return set(data.get("test_users") or []) if data.get("split") == "users" else set()


def teacher_checkpoints(entries: Sequence[str], test_users: Sequence[str]) -> list[Path]:
    """Checkpoint files for ``entries``: a file is taken as it is; a folder gives the run in it
    that held out all of ``test_users`` (leave-one-user-out: the fold's own teacher)."""
    found: list[Path] = []
    for entry in entries:
        path = Path(str(entry)).expanduser()
        if path.is_file():
            found.append(path)
            continue
        if not path.is_dir():
            raise ConfigError(
                f"{KEY}: {entry} does not exist (a checkpoint, a run or a multirun folder); "
                "experiment=watch's teachers come from make new_wearer (make watch trains them if missing)"
            )
        wanted = set(test_users)
        matches = [
            c for c in run_checkpoints(path) if wanted <= _held_out_users(read_checkpoint(c, KEY, mmap=True))
        ]
        if not matches:
            raise ConfigError(
                f"{KEY}: no run in {entry} held out {sorted(wanted)}; train one with "
                f"python train.py -m experiment=new_wearer 'data.test_users=[{','.join(sorted(wanted))}]'"
            )
        found.append(matches[0])
    return found


def check_teacher(path: Path, checkpoint: dict[str, Any], datamodule: Any) -> None:
    """Refuse a teacher whose training or validation data holds any of this run's test
    recordings, compared by content with the teacher's own record (``seen``: whatever data it
    was trained on — a copy with the held-out user renamed too). A checkpoint written before that
    record: its split rebuilt from its saved data settings on this run's data."""
    seen = seen_recordings(checkpoint)
    if seen is not None:
        tested = fingerprints(datamodule.records.sequences[i] for i in datamodule.split.test)
        leaked = sum(f in seen for f in tested)
        if leaked:
            users = sorted({str(datamodule.records.users[i]) for i in datamodule.split.test})
            raise ConfigError(
                f"{KEY}: {path} trained or selected on {leaked} of this run's {len(tested)} test "
                f"recordings (compared by content with its own data); use a teacher that held out {users}"
            )
        return
    settings = dict(checkpoint.get("datamodule_hyper_parameters") or {})
    if not settings:
        raise ConfigError(
            f"{KEY}: {path} does not say what data it was trained on; use a checkpoint of train.py"
        )
    settings.update(path=str(datamodule.source), cache_dir=datamodule.hparams.cache_dir, download=False)
    teacher = GestureDataModule(**settings)
    teacher.setup("fit")
    seen = {teacher.records.files[i] for i in np.concatenate([teacher.split.train, teacher.split.val])}
    tested = [datamodule.records.files[i] for i in datamodule.split.test]
    leaked = [name for name in tested if name in seen]
    if leaked:
        users = sorted({str(datamodule.records.users[i]) for i in datamodule.split.test})
        raise ConfigError(
            f"{KEY}: {path} trained on {len(leaked)} of this run's {len(tested)} test recordings "
            f"(its data.split={settings.get('split')}, test_users={settings.get('test_users')}); "
            f"use a teacher that held out {users}"
        )


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _records_digest(sequences: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for sequence in sequences:
        digest.update(np.ascontiguousarray(sequence, dtype=np.float32).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:16]


def _cached_logits(cache: Path, count: int) -> np.ndarray | None:
    """The cached logits if they fit — [count, classes], finite — else None (recomputed: a
    damaged, shifted or NaN file never trains a student silently)."""
    try:
        logits = np.load(cache, allow_pickle=False)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        log.warning("Ignoring unreadable teacher cache %s (%s); recomputing", cache, err)
        return None
    if logits.shape != (count, NUM_CLASSES) or not np.isfinite(logits).all():
        log.warning("Ignoring teacher cache %s (shape %s, finite: %s); recomputing", cache, logits.shape,
                    bool(np.isfinite(logits).all()) if logits.dtype.kind == "f" else False)  # fmt: skip
        return None
    return logits


def teacher_logits(path: Path, sequences: Sequence[np.ndarray], cache_dir: str | None) -> np.ndarray:
    """[n, classes] logits of the teacher at ``path`` for every sequence, from the cache when
    the same checkpoint already ran over the same recordings."""

    cache = None
    if cache_dir:
        name = f"{_file_digest(path)}-{_records_digest(sequences)}.npy"
        cache = Path(cache_dir).expanduser() / "teachers" / name
        if (cached := _cached_logits(cache, len(sequences))) is not None:
            return cached
    net = load_net(path, KEY)
    with torch.inference_mode():
        logits = np.concatenate(
            [net(*pad_sequences(sequences[i : i + 256])).numpy() for i in range(0, len(sequences), 256)]
        )
    if cache is not None:
        try:
            with atomic_write(cache, "wb", "teacher cache") as handle:
                np.save(handle, logits, allow_pickle=False)
        except StorageError as err:  # a read-only or full cache: computed again next time
            log.warning("Not caching the teacher's logits: %s", err)
    return logits


def attach_soft_targets(datamodule: Any, teachers: Sequence[str], temperature: float) -> list[Path]:
    """Give every training sequence of the (set-up) datamodule the teachers' averaged
    probabilities at ``temperature``; returns the teacher checkpoints used."""
    test_users = sorted({str(datamodule.records.users[i]) for i in datamodule.split.test})
    paths = teacher_checkpoints(teachers, test_users)
    probabilities = []
    for path in paths:
        check_teacher(path, read_checkpoint(path, KEY, mmap=True), datamodule)
        logits = teacher_logits(path, datamodule.records.sequences, datamodule.hparams.cache_dir)
        probabilities.append(torch.softmax(torch.from_numpy(logits) / temperature, dim=1))
    averaged = torch.stack(probabilities).mean(dim=0)
    datamodule.set_soft_targets(averaged[torch.as_tensor(datamodule.split.train)])
    log.info("Distilling from %d teacher(s): %s", len(paths), ", ".join(map(str, paths)))
    return paths
