"""A spotter scored the way ``train.py experiment=spotter`` logs it: the decision rule chosen on the
validation streams (``ChooseDecisionRule``, written into the tested checkpoint), then, per held-out
user and per stream construction, event F1, precision, recall, false activations per hour of rest,
of non-target movement and of real everyday motion, and the median delay.

Metric names (one naming, in MLflow, ``metrics.json`` and cv's summary): ``test/<metric>`` on the
construction no training stream uses (``gesture_rnn.data.unseen_streams``; the goals are judged on
it), ``test_builder/<metric>`` on the training streams' own builder, ``test_user/<user>/<metric>``
per held-out user (unseen construction); ``val/event_f1`` and ``val/false_per_h_movement``: the
chosen rule's, on the validation streams.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np

from gesture_rnn.data.facts import SAMPLING_RATE_HZ
from gesture_rnn.data.streams import GestureEvent, Stream
from gesture_rnn.streaming.decisions import DecisionRule, choose_rule, detect, movement_hours
from gesture_rnn.streaming.events import CONSTRUCTIONS, STREAM_METRICS, TOLERANCE, match_events

log = logging.getLogger(__name__)

PLOT_SECONDS = 90.0


@dataclass(frozen=True)
class TestStreams:
    """One held-out user's streams of one construction: gestures among everything else, an hour of
    rest, and real everyday motion kept out of training (None when no clips are used)."""

    stream: Stream
    rest: Stream
    everyday: Stream | None = None


def joined(streams: Sequence[Stream]) -> tuple[np.ndarray, list[GestureEvent]]:
    """Several streams as one (samples end to end, events shifted): one rule scored over all."""
    events, offset = [], 0
    for stream in streams:
        events += [GestureEvent(e.start + offset, e.end + offset, e.gesture, e.target) for e in stream.events]
        offset += len(stream.samples)
    return np.concatenate([s.samples for s in streams]), events


def per_hour(count: int, samples: float) -> float:
    return count / (samples / SAMPLING_RATE_HZ / 3600) if samples else float("nan")


def score(net, rule: DecisionRule, streams: TestStreams) -> dict[str, float]:
    """Every metric of one user's streams of one construction."""
    vocabulary = net.vocabulary
    probabilities = net.probabilities(streams.stream.samples)
    scores = match_events(streams.stream.events, detect(probabilities, vocabulary, rule), TOLERANCE)
    moving = sum(e.end - e.start + TOLERANCE for e in streams.stream.events if not e.target)
    delays = np.array(scores.delays(), dtype=float) / SAMPLING_RATE_HZ
    rest = len(detect(net.probabilities(streams.rest.samples), vocabulary, rule))
    everyday = float("nan")
    if streams.everyday is not None:
        found = detect(net.probabilities(streams.everyday.samples), vocabulary, rule)
        clips = sum(e.end - e.start for e in streams.everyday.events)
        inside = [
            d for d in found if any(e.start <= d.sample < e.end + TOLERANCE for e in streams.everyday.events)
        ]
        everyday = per_hour(len(inside), clips)
    return {
        "event_f1": scores.f1,
        "precision": scores.precision,
        "recall": scores.recall,
        "false_per_h_rest": per_hour(rest, len(streams.rest.samples)),
        "false_per_h_movement": per_hour(len(scores.during_non_target), moving),
        "false_per_h_everyday": everyday,
        "delay_s": float(np.median(delays)) if len(delays) else float("nan"),
    }


@dataclass
class StreamScores:
    """Each held-out user's metrics per construction: {construction: {user: {metric: value}}}."""

    users: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    streams: Mapping[str, Mapping[str, TestStreams]] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for construction, prefix in CONSTRUCTIONS.items():
            by_user = self.users.get(construction, {})
            for metric in STREAM_METRICS:
                values = [m[metric] for m in by_user.values() if not np.isnan(m[metric])]
                out[f"{prefix}/{metric}"] = float(np.mean(values)) if values else float("nan")
            if by_user:
                out[f"{prefix}/event_f1_worst"] = float(min(m["event_f1"] for m in by_user.values()))
        for user, m in self.users.get("unseen", {}).items():
            out.update({f"test_user/{user}/{metric}": m[metric] for metric in STREAM_METRICS})
        return out

    def write(self, out_dir: Path, net, rule: DecisionRule, figures: bool) -> None:
        """``per_user.csv`` (both constructions), ``rule.json`` and, with ``figures``, each user's
        ``stream_<user>.png`` (the first 90 s of the unseen construction)."""
        import json

        out_dir.mkdir(parents=True, exist_ok=True)
        rows = [
            {"user": user, "construction": construction, **metrics}
            for construction, by_user in self.users.items()
            for user, metrics in by_user.items()
        ]
        with (out_dir / "per_user.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["user", "construction", *STREAM_METRICS])
            writer.writeheader()
            writer.writerows(rows)
        (out_dir / "rule.json").write_text(json.dumps(asdict(rule)) + "\n")
        if figures:
            for user, streams in self.streams.get("unseen", {}).items():
                plot_stream(net, rule, streams.stream, out_dir / f"stream_{user}.png", user)


def score_streams(net, rule: DecisionRule, test: Mapping[str, Mapping[str, TestStreams]]) -> StreamScores:
    """``test``: {construction: {user: TestStreams}}."""
    users = {c: {user: score(net, rule, s) for user, s in by_user.items()} for c, by_user in test.items()}
    return StreamScores(users, test)


class ChooseDecisionRule(L.Callback):
    """Before testing: the decision rule (threshold, hold, refractory) with the best event F1 on the
    validation streams, for the weights being tested; kept in the module (``rule``), written into
    the tested checkpoint and ``last.ckpt``, so predict.py and export.py use it."""

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        from gesture_rnn.streaming.checkpoint import write_rule

        streams = trainer.datamodule.val_streams
        if not streams:
            log.info("No validation streams: the decision rule stays %s", pl_module.rule)
            return
        samples, events = joined(streams)
        probabilities = pl_module.net.probabilities(samples)
        limit = pl_module.max_false_per_h
        pl_module.rule = choose_rule(probabilities, events, pl_module.net.vocabulary, max_false_per_h=limit)
        found = match_events(
            events, detect(probabilities, pl_module.net.vocabulary, pl_module.rule), TOLERANCE
        )
        hours = movement_hours(events)
        pl_module.validation = {
            "val/event_f1": found.f1,
            "val/false_per_h_movement": len(found.during_non_target) / hours if hours else float("nan"),
        }
        log.info(
            "Decision rule %s (validation: %s)",
            pl_module.rule,
            ", ".join(f"{k} {v:.3f}" for k, v in pl_module.validation.items()),
        )
        if not trainer.is_global_zero:
            return
        tested = Path(trainer.ckpt_path) if trainer.ckpt_path else None
        checkpoint = trainer.checkpoint_callback
        last = (
            Path(checkpoint.dirpath) / "last.ckpt" if checkpoint is not None and checkpoint.dirpath else None
        )
        for path in {p.resolve() for p in (tested, last) if p is not None and p.is_file()}:
            write_rule(path, pl_module.rule)


def plot_stream(net, rule: DecisionRule, stream: Stream, path: Path, user: str) -> None:
    """The first ``PLOT_SECONDS`` of a stream: acceleration; the spotter's P(a gesture), the true
    gestures (green: vocabulary, grey: no gesture) and the detections (red)."""
    import matplotlib.pyplot as plt

    from gesture_rnn.utils.figures import save_figure

    end = round(PLOT_SECONDS * SAMPLING_RATE_HZ)
    probabilities = net.probabilities(stream.samples)[:end]
    times = np.arange(len(probabilities)) / SAMPLING_RATE_HZ
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 4.5), sharex=True, height_ratios=[1, 2])
    top.plot(times, stream.samples[:end])
    top.set_ylabel("m/s²")
    bottom.plot(times, 1 - probabilities[:, 0], color="black", linewidth=1, label="P(a gesture)")
    bottom.axhline(rule.threshold, color="grey", linestyle=":", label=f"threshold {rule.threshold}")
    for event in stream.events:
        if event.start >= end:
            continue
        style = (
            {"color": "tab:green", "alpha": 0.25} if event.target else {"color": "tab:grey", "alpha": 0.15}
        )
        bottom.axvspan(event.start / SAMPLING_RATE_HZ, event.end / SAMPLING_RATE_HZ, **style)
        bottom.text(event.start / SAMPLING_RATE_HZ, 1.02, str(event.gesture or "m"), fontsize=7)
    for detection in detect(probabilities, net.vocabulary, rule):
        x = detection.sample / SAMPLING_RATE_HZ
        bottom.plot(x, detection.probability, "v", color="tab:red")
        bottom.text(x, detection.probability - 0.12, str(detection.gesture), color="tab:red", fontsize=7)
    bottom.set_ylim(0, 1.1)
    bottom.set_xlabel(
        f"seconds of {user}'s stream (green: vocabulary gestures, grey: no gesture, "
        "m: arm movement or everyday motion; red: detections)"
    )
    bottom.legend(loc="lower right", fontsize=7)
    save_figure(figure, path)
