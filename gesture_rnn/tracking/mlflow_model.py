"""The trained network as an MLflow model of its run, in the ONNX flavour: it loads without
unpickling anything (``onnx`` is protobuf) and ``mlflow.pyfunc.load_model(<uri>)`` serves it with
onnxruntime, behind the project's input contract (``gesture_rnn.deploy.served_model``: loading the
pyfunc needs this package installed; ``mlflow.onnx.load_model`` gives the bare graph without it).
Pyfunc input: float32 [batch, time, 3] with NaN rows after each sequence's end;
output ``{"probabilities": float32 [batch, 20]}``.

Logged through the run's own ``MlflowClient`` (save locally, then upload as a logged model of
the run): no fluent API, so the process-global tracking URI and active run are never touched.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput

from gesture_rnn.data.facts import NUM_CHANNELS, NUM_CLASSES
from gesture_rnn.deploy.export import export_onnx, nan_padded_example
from gesture_rnn.models.nets import GestureNet


def serve_through_contract(local: Path) -> None:
    """Point the saved model's pyfunc at ``gesture_rnn.deploy.served_model`` (the ONNX graph behind
    the input contract); the ``onnx`` flavour still loads the bare graph."""
    from mlflow.models import Model

    from gesture_rnn.deploy.served_model import LOADER_MODULE

    mlmodel = Model.load(str(local / "MLmodel"))
    mlmodel.flavors["python_function"]["loader_module"] = LOADER_MODULE
    mlmodel.save(str(local / "MLmodel"))


@contextmanager
def logged_model(
    client: MlflowClient, run_id: str, experiment_id: str, name: str
) -> Iterator[tuple[str, Path]]:
    """A logged model of ``run_id`` being written: yields (its URI, a scratch folder whose ``name``
    subfolder is uploaded as its artifacts); READY and linked to the run after, FAILED on error."""
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id)
    try:
        with tempfile.TemporaryDirectory(prefix="gesture-model-") as scratch:
            yield f"models:/{model.model_id}", Path(scratch)
            client.log_model_artifacts(model.model_id, str(Path(scratch) / name))
    except BaseException:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])


def log_mlflow_model(
    net: GestureNet, client: MlflowClient, run_id: str, experiment_id: str, name: str = "model"
) -> str:
    """Log ``net`` as a logged model of ``run_id``; returns its ``models:/<model id>`` URI."""
    import mlflow.onnx
    import onnx
    import onnxruntime
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    # any batch size and length: (-1, -1, 3) in, (-1, 20) out
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, NUM_CHANNELS), "accel")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES), "probabilities")]),
    )
    with logged_model(client, run_id, experiment_id, name) as (uri, scratch):
        graph = export_onnx(net, scratch / "model.onnx", nan_padded=True)
        local = scratch / name
        mlflow.onnx.save_model(
            onnx.load(str(graph)),
            str(local),
            signature=signature,
            input_example=nan_padded_example(net).numpy(),
            pip_requirements=[
                f"onnxruntime=={onnxruntime.__version__}",
                f"onnx=={onnx.__version__}",
                "numpy",
            ],
        )
        serve_through_contract(local)
    return uri


def log_spotter_model(
    net: torch.nn.Module,
    rule: object,
    client: MlflowClient,
    run_id: str,
    experiment_id: str,
    name: str = "model",
) -> str:
    """Log a spotter's ONNX step model (``gesture_rnn.streaming.onnx``) with its sidecar as a logged
    model of ``run_id`` (onnx flavour: the bare step graph; ``predict.py model_uri=... stream=``
    reads the run's checkpoint); returns its ``models:/<model id>`` URI."""
    import mlflow.onnx
    import onnx
    import onnxruntime

    from gesture_rnn.streaming.onnx import export_spotter, sidecar_path

    with logged_model(client, run_id, experiment_id, name) as (uri, scratch):
        graph = scratch / "spotter.onnx"
        export_spotter(net, rule, graph)
        local = scratch / name
        mlflow.onnx.save_model(
            onnx.load(str(graph)),
            str(local),
            pip_requirements=[
                f"onnxruntime=={onnxruntime.__version__}",
                f"onnx=={onnx.__version__}",
                "numpy",
            ],
        )
        (local / "spotter.json").write_text(sidecar_path(graph).read_text())
    return uri
