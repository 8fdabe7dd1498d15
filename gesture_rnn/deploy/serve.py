"""A logged model served over HTTP by MLflow's own scoring server app behind a request-size bound
(``scoring_app``), as a context manager that always stops it — what ``make serve`` runs, and what
the serving test and ``bench/serve_latency.py`` use.

Request (``POST /invocations``, ``Content-Type: application/json``): ``{"inputs": [recording, ...]}``,
each recording a list of ``[x, y, z]`` rows in m/s², all padded to the longest with ``null`` rows
(the model reads each recording up to its first null row). A recording the input contract refuses
(``gesture_rnn.data.contract``), or a request over ``scoring_app.MAX_REQUEST_BYTES``, is a 4xx
with a message. Response: ``{"predictions":
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


def serve_command(host: str, port: int) -> list[str]:
    """uvicorn running ``scoring_app`` (MLflow's scoring server behind a request-size bound, a
    deadline for a request's headers, a bound on connections)."""
    return [sys.executable, "-m", "gesture_rnn.deploy.scoring_app", "--host", host, "--port", str(port)]


@contextmanager
def served(
    model_uri: str, tracking_uri: str, port: int, log: Path, timeout_s: float = 120.0
) -> Iterator[str]:
    """The model at ``model_uri`` served on 127.0.0.1:port as ``make serve`` serves it; yields its
    URL once ``/ping`` answers, and stops it on exit."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "GESTURE_MODEL_URI": model_uri}
    url = f"http://127.0.0.1:{port}"
    with running(serve_command("127.0.0.1", port), env, f"{url}/ping", log, timeout_s):
        yield url


def main(argv: list[str] | None = None) -> int:
    """``python -m gesture_rnn.deploy.serve MODEL_URI --port N [--host H]``: what make serve runs."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gesture_rnn.deploy.serve", description=main.__doc__)
    parser.add_argument("model_uri")
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--host", default="127.0.0.1", help="127.0.0.1 unless you mean to serve others")
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port {args.port} is outside 1..65535")
    env = {**os.environ, "GESTURE_MODEL_URI": args.model_uri}
    os.execve(sys.executable, serve_command(args.host, args.port), env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
