"""``make ui``: MLflow's UI on the local store, announced by one link that lands on what a user
wants — an experiment's runs table in the model-training view, accuracy columns shown — instead
of MLflow's GenAI home. The UI itself is MLflow's, unpatched: the link carries the workflow type
and the experiment keeps the view as MLflow's "share view" does (``runs.EXPERIMENT_TAGS``).

    python -m gesture_rnn.tracking.ui --store sqlite:///outputs/mlflow.db --port 5000
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from pathlib import Path

from gesture_rnn.tracking import runs

# Lines a user cannot act on: the deprecation MLflow's own server triggers in starlette, and the
# server's INFO chatter (uvicorn's "running on" names the bare address, not the runs table)
QUIET_ENV = {
    "PYTHONWARNINGS": "ignore:starlette.middleware.wsgi is deprecated:UserWarning",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # the GenAI job workers (prompt optimisation, judges): nothing here uses them, and a Ctrl-C
    # while they start prints a page of tracebacks
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


def experiment_links(store: str, ui: str) -> list[str]:
    """``name: link`` for each of the store's experiments that holds runs of this project (their
    view brought up to date: a store from an older version gets it too)."""
    if store.startswith("sqlite:///") and not Path(store.removeprefix("sqlite:///")).is_file():
        return []
    from mlflow import MlflowClient

    client = MlflowClient(store)
    links = []
    for experiment in client.search_experiments():
        if experiment.tags.get("mlflow.experimentKind") != runs.EXPERIMENT_TAGS["mlflow.experimentKind"]:
            continue
        runs.experiment_id_of(client, experiment.name, experiment.artifact_location)
        links.append(f"{experiment.name}: {runs.runs_table_link(ui, experiment.experiment_id)}")
    return links


def answering(host: str, port: int) -> bool:
    """Something already listens there (another ``make ui``)."""
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gesture_rnn.tracking.ui", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--store", required=True, help="the tracking store, e.g. sqlite:///outputs/mlflow.db")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    if answering(args.host, args.port):
        print(f"error: port {args.port} is taken (another make ui?): UI_PORT=5001 make ui", file=sys.stderr)
        return 2
    ui = f"http://{args.host}:{args.port}"
    links = experiment_links(args.store, ui)
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    command = [mlflow, "ui", "--backend-store-uri", args.store, "--host", args.host, "--port", str(args.port)]
    command += ["--workers", "1", "--uvicorn-opts", "--log-level warning"]
    print("MLflow UI (Ctrl-C stops it), open:")
    for line in links or [f"no runs yet ({args.store}): {ui}"]:
        print(f"  {line}", flush=True)
    os.execve(mlflow, command, {**os.environ, **QUIET_ENV})  # the server, in this process: Ctrl-C stops it


if __name__ == "__main__":
    sys.exit(main())
