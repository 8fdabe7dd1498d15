"""A logged model served over HTTP by MLflow's own scoring server (``mlflow models serve``), as a
context manager that always stops it — what ``make serve`` runs, and what the serving test and
``bench/serve_latency.py`` use.

Request (``POST /invocations``, ``Content-Type: application/json``): ``{"inputs": [recording, ...]}``,
each recording a list of ``[x, y, z]`` rows in m/s², all padded to the longest with ``null`` rows
(the model reads each recording up to its first null row). Response: ``{"predictions":
{"probabilities": [[p_1, ..., p_20], ...]}}``, calibrated probabilities of gestures 1-20.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def request_body(recordings: Sequence[np.ndarray]) -> bytes:
    """The documented JSON request for [time, 3] recordings of any lengths."""
    steps = max(len(r) for r in recordings)
    batch = [np.asarray(r, dtype=float).tolist() + [[None] * 3] * (steps - len(r)) for r in recordings]
    return json.dumps({"inputs": batch}).encode()


def post_json(url: str, body: bytes) -> tuple[int, dict]:
    """POST ``body`` as JSON -> (HTTP status, the decoded answer), error statuses included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def predictions(answer: dict) -> np.ndarray:
    """[n, 20] probabilities from a scoring server's JSON answer."""
    served = answer["predictions"]
    if isinstance(served, dict):  # a named output: {"probabilities": [...]}
        served = served["probabilities"]
    return np.asarray(served, dtype=np.float32)


@contextmanager
def running(
    command: list[str], env: dict[str, str], health_url: str, log: Path, timeout_s: float
) -> Iterator[None]:
    """Run a server ``command`` (output to ``log``) until ``health_url`` answers 200; stop it on
    exit, whatever happened (terminate, then kill)."""
    with open(log, "w") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(health_url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(command[:4])} did not start; its log: {log}")
                time.sleep(0.5)
            yield
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@contextmanager
def served(
    model_uri: str, tracking_uri: str, port: int, log: Path, timeout_s: float = 120.0
) -> Iterator[str]:
    """``mlflow models serve -m model_uri`` on 127.0.0.1:port (local environment); yields its URL
    once ``/ping`` answers, and stops it on exit."""
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
               "-h", "127.0.0.1", "-p", str(port)]  # fmt: skip
    # the scoring server is started as `uvicorn` from PATH: this interpreter's environment first
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PATH": path}
    url = f"http://127.0.0.1:{port}"
    with running(command, env, f"{url}/ping", log, timeout_s):
        yield url
