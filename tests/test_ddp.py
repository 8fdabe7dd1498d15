"""``trainer=ddp_cpu``: two processes (gloo) train one model, rank 0 alone reports and logs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT
from mlflow import MlflowClient

pytestmark = pytest.mark.integration  # trains or starts processes: not in make test-fast


def test_two_process_training_on_cpu_gives_one_run_with_synced_metrics(synthetic_zip, tmp_path):
    command = [
        sys.executable, str(PROJECT_ROOT / "train.py"), "trainer=ddp_cpu", f"paths.root_dir={tmp_path}",
        f"data.path={synthetic_zip}", f"data.cache_dir={tmp_path}/cache", "model.net.hidden=16",
        "model.optimizer.lr=0.01", "trainer.max_epochs=6", "console=quiet", "log_model=false",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("test accuracy") == 1, "only rank 0 prints the summary"

    (run_dir,) = (tmp_path / "outputs" / "train" / "runs").iterdir()
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["metrics"]["test/acc"] > 0.3, "the synthetic gestures are learnt (chance is 0.05)"
    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("gestures").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["trainer.strategy"] == "ddp"
    assert run.data.metrics["test/acc"] == record["metrics"]["test/acc"]
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 6, "one per epoch, not per rank"
