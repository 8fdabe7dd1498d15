"""Personalisation: adapt a trained network to one person from ``shots`` recordings per gesture.

    python personalize.py ckpt_path=<base checkpoint> user=U03 shots=3 [method=head|all|ncm]
    python personalize.py ckpt_path=... input=my_recordings/ shots=2   (Uxx/yy/zz.txt layout)

The shots are drawn by seed from the person's recordings; every other recording of theirs is the
evaluation set (the two never overlap). Methods:

- ``head``: retrain the linear head on the frozen network's features (the default: fastest, and
  best with one or two shots per gesture — ``make personalize``);
- ``all``: fine-tune every weight with a small learning rate;
- ``ncm``: nearest class mean of the features, written as a linear head (no training at all).

The result is an ordinary checkpoint (``predict.py``, ``export.py`` take it) with a
``personalization`` record; its temperature is reset to 1 (there is no held-out data of the
person to calibrate on).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from gesture_rnn.config.rules import Rule, check_rules, is_int, is_number
from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.data.duplicates import distinct_recordings
from gesture_rnn.data.facts import NUM_CLASSES
from gesture_rnn.data.fingerprints import fingerprints
from gesture_rnn.data.parsing import GestureRecords
from gesture_rnn.deploy.inference import class_probabilities
from gesture_rnn.errors import ConfigError, DataError
from gesture_rnn.models.checkpoint import seen_recordings
from gesture_rnn.models.nets import GestureNet
from gesture_rnn.models.teach import representations
from gesture_rnn.utils.parallel import torch_threads

METHODS = ("head", "all", "ncm")


def draw_shots(labels: np.ndarray, shots: int, seed: int, user: str) -> tuple[np.ndarray, np.ndarray]:
    """(adapt, evaluate) indices: ``shots`` recordings of each gesture drawn by ``seed``, and all
    the others. Every gesture must keep at least one recording to evaluate."""
    rng = np.random.default_rng(seed)
    adapt = []
    for gesture in range(NUM_CLASSES):
        own = np.flatnonzero(labels == gesture)
        if len(own) <= shots:
            raise DataError(
                f"shots={shots} is invalid for {user}: gesture {gesture + 1} has {len(own)} recording(s), "
                f"and at least one must stay out of adaptation to evaluate (shots at most {len(own) - 1})"
            )
        adapt.extend(rng.choice(own, size=shots, replace=False).tolist())
    adapt_indices = np.sort(np.asarray(adapt, dtype=np.int64))
    return adapt_indices, np.setdiff1d(np.arange(len(labels)), adapt_indices)


@torch.no_grad()
def accuracy(net: GestureNet, sequences: list[np.ndarray], labels: np.ndarray) -> float:
    predicted = class_probabilities(net, *pad_sequences(sequences)).argmax(dim=1).numpy()
    return float((predicted == labels).mean())


def adapt(
    base: GestureNet, sequences: list[np.ndarray], labels: np.ndarray, method: str, steps: int, lr: float
) -> GestureNet:
    """A copy of ``base`` adapted to these recordings (``base`` is left as it was)."""
    if method not in METHODS:
        raise ConfigError(f"method={method!r} is invalid: it must be one of {list(METHODS)}")
    net = copy.deepcopy(base)
    net.temperature.fill_(1.0)
    targets = torch.as_tensor(labels)
    if method == "ncm":
        # -||f - m_c||² = 2 m_c·f - ||m_c||² - ||f||²; the last term is the same for every class
        feats = representations(net, sequences, batch=len(sequences))
        means = torch.stack([feats[targets == c].mean(0) for c in range(NUM_CLASSES)])
        net.head.weight.data.copy_(2 * means)
        net.head.bias.data.copy_(-(means**2).sum(1))
        return net.eval()
    with torch.enable_grad():
        if method == "head":
            feats = representations(net, sequences, batch=len(sequences))
            optimizer = torch.optim.Adam(net.head.parameters(), lr=lr)
            for _ in range(steps):
                optimizer.zero_grad()
                F.cross_entropy(net.head(feats), targets).backward()
                optimizer.step()
        else:  # all: every weight, the network in training mode (dropout) on the shots
            batch = pad_sequences(sequences)
            optimizer = torch.optim.Adam(net.parameters(), lr=lr)
            net.train()
            for _ in range(steps):
                optimizer.zero_grad()
                F.cross_entropy(net(*batch), targets).backward()
                optimizer.step()
    return net.eval()


def user_recordings(records: GestureRecords, user: str) -> np.ndarray:
    """Indices of ``user``'s recordings; a DataError naming the users there if there are none."""
    mine = np.flatnonzero(records.users == user)
    if len(mine) == 0:
        users = ", ".join(sorted(set(records.users.tolist())))
        raise DataError(f"user={user} has no recordings here; users in the data: {users}")
    return mine


@dataclass(frozen=True)
class Personalized:
    net: GestureNet
    accuracy_before: float  # the base network on the evaluation recordings
    accuracy_after: float
    adapt_seconds: float
    adapt_count: int
    evaluate_count: int
    shots_seen: tuple[str, ...] = ()  # fingerprints of the shots: the personalised model saw them


def personalize(
    base: GestureNet,
    records: GestureRecords,
    user: str,
    shots: int,
    method: str,
    seed: int,
    steps: int,
    lr: float,
) -> Personalized:
    """Draw the shots from ``user``'s recordings, adapt, and evaluate on the user's others."""
    return personalize_ensemble([base], records, user, shots, method, seed, steps, lr)


def personalize_ensemble(
    bases: list[GestureNet],
    records: GestureRecords,
    user: str,
    shots: int,
    method: str,
    seed: int,
    steps: int,
    lr: float,
) -> Personalized:
    """Every member adapted on the same shots, evaluated as one ensemble (their probabilities
    averaged; one member is the network itself) on the user's other recordings; the time is the
    members' together."""
    from gesture_rnn.models.ensemble import AveragedNet

    def combined(nets: list[GestureNet]) -> GestureNet:
        return nets[0] if len(nets) == 1 else AveragedNet(nets)

    person = records.select(user_recordings(records, user))
    adapt_idx, eval_idx = draw_shots(person.labels, shots, seed, user)
    shots_seq = [person.sequences[i] for i in adapt_idx]
    eval_seq, eval_labels = [person.sequences[i] for i in eval_idx], person.labels[eval_idx]
    before = accuracy(combined(bases), eval_seq, eval_labels)
    started = time.perf_counter()
    net = combined([adapt(base, shots_seq, person.labels[adapt_idx], method, steps, lr) for base in bases])
    seconds = time.perf_counter() - started
    return Personalized(
        net=net,
        accuracy_before=before,
        accuracy_after=accuracy(net, eval_seq, eval_labels),
        adapt_seconds=seconds,
        adapt_count=len(adapt_idx),
        evaluate_count=len(eval_idx),
        shots_seen=tuple(sorted(set(fingerprints(shots_seq)))),
    )


def check_unseen(
    checkpoint: dict[str, Any], person: GestureRecords, user: str, source_is_dataset: bool
) -> None:
    """Evaluating on a person is only honest if the base model never saw their recordings: compared
    by content with the base's record (``seen``), however the recordings arrive (the dataset, a
    copy of it, a renamed folder). A checkpoint without that record: the dataset's users by split."""
    seen = seen_recordings(checkpoint)
    if seen is not None:
        known = sum(f in seen for f in fingerprints(person.sequences))
        if known:
            raise ConfigError(
                f"user={user}: {known} of their {len(person)} recordings were in the base model's "
                "training or validation data (compared by content); personalise a model trained "
                f"without them: python train.py data.split=users data.test_users=[{user}]"
            )
        return
    if not source_is_dataset:
        return
    data = checkpoint.get("datamodule_hyper_parameters") or {}
    if data.get("split") != "users" or user not in (data.get("test_users") or []):
        raise ConfigError(
            f"user={user} was in the base model's training data (data.split={data.get('split')}, "
            f"test_users={data.get('test_users')}); personalise a model trained without them: "
            f"python train.py data.split=users data.test_users=[{user}]"
        )


SETTINGS = (
    Rule("shots", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule("method", f"one of {list(METHODS)}", lambda v: v in METHODS),
    Rule("steps", "an integer >= 1", lambda v: is_int(v) and v >= 1),
    Rule("lr", "a number > 0", lambda v: is_number(v) and v > 0),
    Rule("seed", "an integer >= 0", lambda v: is_int(v) and v >= 0),
    Rule("num_threads", "null or an integer >= 1", lambda v: v is None or (is_int(v) and v >= 1)),
)


def _records(cfg: Any) -> tuple[GestureRecords, bool]:
    """The person's recordings (``input``) or the dataset; and whether it is the dataset."""
    from gesture_rnn.data.facts import MD5, URL
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.data.source import check_source, locate_dataset

    if cfg.get("input"):
        return load_records(check_source(Path(str(cfg.input)).expanduser(), "input"), None), False
    source = locate_dataset(cfg.get("data_path"), cfg.cache_dir, URL, MD5)
    return load_records(source, cfg.cache_dir), True


def _pick_user(cfg: Any, records: GestureRecords) -> str:
    users = sorted(set(records.users.tolist()))
    if cfg.get("user"):
        user_recordings(records, str(cfg.user))  # one that is there
        return str(cfg.user)
    if len(users) == 1:
        return users[0]
    raise ConfigError(f"user is required: the recordings hold {len(users)} users ({', '.join(users)})")


def run_personalize(cfg: Any) -> Personalized:
    """``personalize.py``: adapt, evaluate, write the personalised checkpoint, log an MLflow run."""
    from gesture_rnn.models.checkpoint import (
        NET_PREFIX,
        net_from_checkpoint,
        output_beside_base,
        read_checkpoint,
    )
    from gesture_rnn.utils.atomic import atomic_write

    check_rules(cfg, SETTINGS)
    checkpoint = read_checkpoint(cfg.get("ckpt_path"))
    out = output_beside_base(cfg.out, cfg.ckpt_path, "personalised")
    records, is_dataset = _records(cfg)
    user = _pick_user(cfg, records)
    records, left_out = distinct_recordings(records.select(user_recordings(records, user)))
    check_unseen(checkpoint, records.select(user_recordings(records, user)), user, is_dataset)
    threads = int(cfg.num_threads) if cfg.get("num_threads") is not None else None
    with torch_threads(threads):
        base = net_from_checkpoint(checkpoint)
        result = personalize(base, records, user, cfg.shots, cfg.method, cfg.seed, cfg.steps, float(cfg.lr))
    state = {k: v for k, v in checkpoint["state_dict"].items() if not k.startswith(NET_PREFIX)}
    state.update({NET_PREFIX + k: v for k, v in result.net.state_dict().items()})
    record = {
        "base_checkpoint": str(cfg.ckpt_path),
        "user": user,
        "shots": cfg.shots,
        "method": cfg.method,
        "seed": cfg.seed,
        "accuracy_before": result.accuracy_before,
        "accuracy_after": result.accuracy_after,
        "shots_seen": list(result.shots_seen),
    }
    with atomic_write(out, "wb", "personalised checkpoint") as handle:
        torch.save({**checkpoint, "state_dict": state, "personalization": record}, handle)
    run_id = _log_run(cfg, record, result) if cfg.get("tracking_uri") else None
    print(
        f"{user}: {cfg.shots} shot(s) per gesture ({result.adapt_count} recordings), method {cfg.method}\n"
        f"  accuracy on {result.evaluate_count} other recordings  {result.accuracy_before:.4f} -> "
        f"{result.accuracy_after:.4f}\n"
        f"  adapted in     {result.adapt_seconds:.2f} s ({threads or torch.get_num_threads()} thread(s))\n"
        f"  checkpoint     {out}"
        + (f"\n  MLflow run     {run_id}" if run_id else "")
        + (f"\n  left out       {len(left_out)} duplicate(s): {', '.join(left_out)}" if left_out else "")
    )
    return result


def _log_run(cfg: Any, record: dict[str, Any], result: Personalized) -> str:
    """An MLflow run (experiment ``gestures-personalize``) tagged with the base model's run."""
    from gesture_rnn.config.resolvers import artifact_location
    from gesture_rnn.tracking import runs

    base_dir = Path(str(cfg.ckpt_path)).expanduser().resolve().parent.parent
    base_run = base_dir / runs.RUN_ID_FILE
    tags = {"mlflow.runName": f"personalize {record['user']}", "base_checkpoint": record["base_checkpoint"]}
    if base_run.is_file():
        tags["base_run_id"] = base_run.read_text().strip()
    uri = str(cfg.tracking_uri)
    location = artifact_location(uri, str(cfg.artifact_dir))
    with runs.finished_run(uri, "gestures-personalize", location, tags) as (client, run_id):
        for key in ("user", "shots", "method", "seed"):
            client.log_param(run_id, key, record[key])
        client.log_param(run_id, "steps", cfg.steps)
        client.log_param(run_id, "lr", cfg.lr)
        for key in ("accuracy_before", "accuracy_after"):
            client.log_metric(run_id, key, record[key])
        client.log_metric(run_id, "adapt_seconds", result.adapt_seconds)
    return run_id
