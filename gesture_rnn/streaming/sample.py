"""``python -m gesture_rnn.streaming.sample``: a continuous recording to try ``predict.py stream=``
on, written from the dataset — every recording of one user in a drawn order, separated by rest
(``gesture_rnn.data.streams.build_stream``) — with its truth beside it (``<name>.events.csv``:
when each gesture starts and ends, and whether it is one a spotter announces).

    python -m gesture_rnn.streaming.sample                      # walk.txt: U08, seed 0
    python -m gesture_rnn.streaming.sample --user U03 --out u03.txt
    python predict.py spotter=<spotter>.onnx stream=walk.txt    # then read it

The dataset is found as train.py finds it: ``--data``, ``$GESTURES_DATA`` or the zip ``make data``
kept. No torch, no Lightning.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gesture_rnn.data.facts import MD5, URL, USERS
from gesture_rnn.errors import GestureRNNError

DEFAULT_CACHE = "~/.cache/gesture_rnn"


def write_sample_stream(data: str | None, user: str, seed: int, out: Path, cache_dir: str) -> str:
    """Write the stream and its events file; a line saying what was written."""
    from gesture_rnn.data.parsing import load_records
    from gesture_rnn.data.source import locate_dataset
    from gesture_rnn.data.streams import RestModel, build_stream, events_path, write_stream

    records = load_records(locate_dataset(data, cache_dir, URL, MD5), cache_dir)
    stream = build_stream(records, user, seed, RestModel.from_records(records))
    write_stream(stream, out)
    announced = sum(e.target for e in stream.events)
    return (
        f"  stream   {out} ({stream.seconds / 60:.1f} min at {stream.rate_hz:g} Hz, {user}, seed {seed})\n"
        f"  truth    {events_path(out)} ({announced} gestures to announce, "
        f"{len(stream.events) - announced} movements to ignore)\n"
        f"  next     python predict.py spotter=<spotter>.onnx stream={out}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m gesture_rnn.streaming.sample", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--user", default="U08", choices=USERS, help="whose recordings (default U08)")
    parser.add_argument("--seed", type=int, default=0, help="draws the order and the rest between gestures")
    parser.add_argument("--out", type=Path, default=Path("walk.txt"))
    parser.add_argument(
        "--data", default=None, help="the dataset zip or folder (default: as train.py finds it)"
    )
    args = parser.parse_args(argv)
    cache_dir = os.environ.get("GESTURE_RNN_CACHE", DEFAULT_CACHE)
    try:
        print(write_sample_stream(args.data, args.user, args.seed, args.out.expanduser(), cache_dir))
    except GestureRNNError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
