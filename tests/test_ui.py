"""``make ui``: its one printed link opens the runs table of MLflow's model-training view with
the accuracy columns shown — in Chromium, on MLflow's own unpatched UI."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import pytest
from conftest import PROJECT_ROOT

from demo.browser import chromium
from gesture_rnn.tracking import runs
from gesture_rnn.tracking.ui import answering

pytestmark = pytest.mark.integration  # starts MLflow's server and a browser


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_printed_link_opens_the_runs_table_with_accuracy_columns(tmp_path):
    pytest.importorskip("playwright.sync_api")
    if chromium() is None:
        pytest.skip("Chromium is missing: make browser installs it")
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path}/mlflow.db"
    run_id = runs.create_run(
        store, "gestures", str(tmp_path / "mlartifacts"), {"mlflow.runName": "gru 16/2 · seed 0"}
    )
    client = MlflowClient(store)
    client.log_metric(run_id, "test/acc", 0.93)
    client.log_metric(run_id, "val/acc_best", 0.91)
    client.set_terminated(run_id)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gesture_rnn.tracking.ui", "--store", store, "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    try:
        printed = [server.stdout.readline() for _ in range(2)]
        (link,) = re.findall(r"gestures: (\S+)", printed[1])
        assert link.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        deadline = time.monotonic() + 60
        while not answering("127.0.0.1", port):
            assert time.monotonic() < deadline and server.poll() is None, "the UI did not start"
            time.sleep(0.5)
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(link)
            page.wait_for_selector(".ag-header-cell[col-id='metrics.`test/acc`']", timeout=30_000)
            columns = page.eval_on_selector_all(
                ".ag-header-cell[col-id]", "cells => cells.map(c => c.getAttribute('col-id'))"
            )
            assert {"metrics.`test/acc`", "metrics.`val/acc_best`", "attributes.`Source`"} <= set(columns)
            assert "/runs?" in page.url and "workflowType=machine_learning" in page.url, "not the GenAI home"
            assert page.get_by_text("gru 16/2 · seed 0").count() == 1, "the run is listed"
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    rest = server.stdout.read()
    assert "StarletteDeprecationWarning" not in rest and "Traceback" not in rest, rest


def test_a_port_in_use_is_refused_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "gesture_rnn.tracking.ui",
                "--store",
                f"sqlite:///{tmp_path}/m.db",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: port {port} is taken (another make ui?): UI_PORT=5001 make ui"
