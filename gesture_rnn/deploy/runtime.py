"""One onnxruntime setting for every runtime of the project — ``predict.py``, the served model,
the stream spotter and the wearer's page — so that one model gives one answer wherever it runs.

onnxruntime's default graph optimisation in Python fuses an int8 model's quantise-multiply-
dequantise steps into other kernels, while onnxruntime-web runs them as exported: probabilities
then differed by up to 3e-3 and a detection moved by a sample. Every session here runs the graph
as exported (no graph optimisation); ``demo/page/models.js`` sets the same level
(``GRAPH_OPTIMIZATION``, onnxruntime-web's name for it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

GRAPH_OPTIMIZATION = "disabled"  # onnxruntime-web's graphOptimizationLevel; ORT_DISABLE_ALL in Python


def ort_session(model: str | Path | bytes, threads: int | None = None) -> Any:
    """An onnxruntime CPU session of ``model`` (a path or the model's bytes) running its graph as
    exported; ``threads`` bounds onnxruntime's own threads (None: its default)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = options.inter_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
