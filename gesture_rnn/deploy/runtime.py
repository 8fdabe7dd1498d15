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


def export_target(out: str | None, source: Path, suffix: str, quantize: str | None) -> Path:
    """Where export.py writes: ``out=``, else beside the checkpoint — ``epoch_007.onnx``, and
    ``epoch_007.int8.onnx`` for int8 weights, so a float and an int8 export never overwrite
    each other."""
    if out:
        return Path(out).expanduser()
    return source.with_suffix(f".{quantize}{suffix}" if quantize else suffix)


def describe_file(path: Path, quantize: str | None) -> str:
    """``path (int8 weights, 54.8 KB)``: what export.py prints for the file it wrote."""
    kind = f"{quantize} weights, " if quantize else ""
    return f"{path} ({kind}{path.stat().st_size / 1000:.1f} KB)"


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


# the key of the ONNX metadata entry that holds what a model's answers depend on (gesture order,
# normalisation, a spotter's sizes and rule): written by export.py, checked against the sidecar
TRUTH_KEY = "gesture_rnn"
# the sidecar fields a model carries in its own metadata: a classifier's and a spotter's
CLASSIFIER_TRUTH = ("class_index_to_gesture", "normalization", "temperature")
SPOTTER_TRUTH = ("vocabulary", "kernel", "hidden", "learned_non_target", "rule")


def write_truth(path: Path, truth: dict[str, Any]) -> None:
    """Store ``truth`` (JSON) in the ONNX model at ``path``'s own metadata, in place (``path`` is
    an export's partial file, renamed once complete)."""
    import json

    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key, entry.value = TRUTH_KEY, json.dumps(truth, sort_keys=True)
    onnx.save(model, str(path))


def read_truth(session: Any) -> dict[str, Any] | None:
    """What an exported model says about itself (``write_truth``), or None for a model exported
    before it did."""
    import json

    value = session.get_modelmeta().custom_metadata_map.get(TRUTH_KEY)
    return None if value is None else json.loads(value)


def check_truth(session: Any, sidecar: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    """The sidecar's ``fields`` equal what the model says about itself; else a DataError naming
    the first that differs (a sidecar copied from another model, or edited, relabels every answer)."""
    from gesture_rnn.errors import DataError

    truth = read_truth(session)
    if truth is None:
        return
    for field in fields:
        if field in truth and truth[field] != sidecar.get(field):
            raise DataError(
                f"{where}: its sidecar's {field} ({str(sidecar.get(field))[:80]}) is not the model's own "
                f"({str(truth[field])[:80]}): the sidecar is not this model's; export it again"
            )
