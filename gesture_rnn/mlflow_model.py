"""The trained network as an MLflow model of its run: ``mlflow.pyfunc.load_model(<uri>)`` gives
class probabilities for float32 [batch, time, 3] with NaN rows after each sequence's end.

Logged through the run's own ``MlflowClient`` (save locally, then upload as a logged model of
the run): no fluent API, so the process-global tracking URI and active run are never touched.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
from mlflow import MlflowClient
from mlflow.entities import LoggedModelOutput

from gesture_rnn.data.facts import NUM_CHANNELS, NUM_CLASSES
from gesture_rnn.exporting import example_inputs, exportable
from gesture_rnn.models.nets import GestureNet


def log_mlflow_model(
    net: GestureNet, client: MlflowClient, run_id: str, experiment_id: str, name: str = "model"
) -> str:
    """Log ``net`` as a logged model of ``run_id``; returns its ``models:/<model id>`` URI."""
    import mlflow.pytorch
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    wrapper = exportable(net)
    accel, lengths = example_inputs(net)
    example = accel.clone()
    example[1, int(lengths[1]) :] = float("nan")
    # any batch size and length: (-1, -1, 3) in, (-1, 20) out
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, NUM_CHANNELS))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_CLASSES))]),
    )
    model = client.create_logged_model(experiment_id, name=name, source_run_id=run_id)
    try:
        with tempfile.TemporaryDirectory(prefix="gesture-model-") as scratch:
            local = Path(scratch) / name
            mlflow.pytorch.save_model(
                wrapper,
                str(local),
                signature=signature,
                input_example=example.numpy(),
                pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "numpy"],
                # pickle, not "pt2": torch.export would freeze the example's sequence length; the
                # package travels with the model so it loads without this checkout
                serialization_format="pickle",
                code_paths=[str(Path(__file__).resolve().parent)],
            )
            client.log_model_artifacts(model.model_id, str(local))
    except BaseException:
        client.finalize_logged_model(model.model_id, "FAILED")
        raise
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
    return f"models:/{model.model_id}"
