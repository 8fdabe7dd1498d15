"""Single-gesture latency and batch throughput of a trained checkpoint on one CPU thread:
PyTorch (packed, as trained), PyTorch (export path), TorchScript and onnxruntime.

    python -m bench.inference CHECKPOINT [--data gestures-dataset.zip]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from gesture_rnn.data.batching import pad_sequences
from gesture_rnn.data.datamodule import GestureDataModule
from gesture_rnn.deploy.export import GestureProbabilities, export_onnx, export_torchscript
from gesture_rnn.deploy.runtime import ort_session
from gesture_rnn.models.checkpoint import load_net


def timings(
    run: Callable[[np.ndarray], object], sequences: list[np.ndarray], repeats: int = 700, warmup: int = 100
) -> dict[str, float]:
    """p50 and p99 milliseconds of ``run`` on one recording at a time, the first ``warmup`` calls
    not counted."""
    latencies = []
    for i in range(repeats):
        seq = sequences[i % len(sequences)]
        start = time.perf_counter()
        run(seq)
        latencies.append((time.perf_counter() - start) * 1000)
    latencies = latencies[warmup:]
    return {"p50": float(np.percentile(latencies, 50)), "p99": float(np.percentile(latencies, 99))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--data", default=os.environ.get("GESTURES_DATA"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_net(str(args.checkpoint))
    dm = GestureDataModule.from_shipped_config(path=args.data, cache_dir=tempfile.mkdtemp(), val_fraction=0.0)
    dm.setup()
    sequences = [s.numpy() for s in dm.test_dataloader().dataset.sequences]
    workdir = Path(tempfile.mkdtemp())
    session = ort_session(export_onnx(model, workdir / "m.onnx"), threads=1)
    scripted = torch.jit.load(str(export_torchscript(model, workdir / "m.pt")))
    wrapper = GestureProbabilities(model)

    def one(fn):
        def run(seq: np.ndarray):
            with torch.inference_mode():
                return fn(torch.from_numpy(seq)[None], torch.tensor([len(seq)]))

        return run

    def ort(seq: np.ndarray):
        return session.run(None, {"accel": seq[None], "lengths": np.array([len(seq)], dtype=np.int64)})

    accel, lengths = pad_sequences(sequences[:256])
    feed = {"accel": accel.numpy(), "lengths": lengths.numpy()}
    # name -> (one gesture, the batch of 256)
    sides = {
        "PyTorch, packed (training path)": (
            one(lambda x, n: torch.softmax(model(x, n), 1)),
            lambda: torch.softmax(model(accel, lengths), 1),
        ),
        "PyTorch, export path": (one(wrapper), lambda: wrapper(accel, lengths)),
        "TorchScript": (one(scripted), lambda: scripted(accel, lengths)),
        "onnxruntime": (ort, lambda: session.run(None, feed)),
    }
    shape = f"{model.family}, {sum(p.numel() for p in model.parameters()):,} parameters"
    print(f"checkpoint {args.checkpoint} ({shape}), 1 CPU thread")
    print("| runtime | one gesture p50 (ms) | p99 (ms) | batch of 256 (gestures/s) |")
    print("|---|---|---|---|")
    for name, (single, batch) in sides.items():
        result = timings(single, sequences)
        with torch.inference_mode():
            batch()
            start = time.perf_counter()
            for _ in range(5):
                batch()
            throughput = 5 * 256 / (time.perf_counter() - start)
        print(f"| {name} | {result['p50']:.2f} | {result['p99']:.2f} | {throughput:.0f} |")


if __name__ == "__main__":
    main()
