"""Shared fixtures: a small synthetic dataset in the real ``gestures-dataset/Uxx/yy/zz.txt`` layout."""

from __future__ import annotations

import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import gesture_rnn  # noqa: F401  (registers the config resolvers)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"
REAL_DATA = os.environ.get("GESTURES_DATA")

SYNTH_USERS = ("U01", "U02", "U03")
SYNTH_GESTURES = 20
SYNTH_REPETITIONS = 4


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (for a test server, or an unreachable one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def recording_text(values: np.ndarray) -> str:
    """One recording in the dataset's 6-column format (three timestamps, then x y z)."""
    lines = []
    for step, (x, y, z) in enumerate(values):
        millis = 1384186054309 + 110 * step
        lines.append(f"{millis} {78952598976553 + step} {1452892000000 + step} {x:.6f} {y:.6f} {z:.6f}")
    return "\n".join(lines) + "\n"


def synthetic_sequence(gesture: int, rng: np.random.Generator) -> np.ndarray:
    """A learnable pattern: each gesture leans the watch its own way (a point on a circle), plus
    gravity, a gesture-specific wobble and noise."""
    length = int(rng.integers(10, 30))
    angle = 2 * np.pi * gesture / SYNTH_GESTURES
    t = np.arange(length)
    signal = np.empty((length, 3))
    signal[:, 0] = 3 * np.cos(angle)
    signal[:, 1] = 3 * np.sin(angle)
    signal[:, 2] = 9.81 + np.sin(0.3 * (1 + gesture % 4) * t)
    return signal + rng.normal(0, 0.3, signal.shape)


def write_dataset(root: Path, users=SYNTH_USERS, repetitions=SYNTH_REPETITIONS, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = root / "gestures-dataset"
    for user in users:
        for gesture in range(SYNTH_GESTURES):
            folder = base / user / f"{gesture + 1:02d}"
            folder.mkdir(parents=True)
            for rep in range(1, repetitions + 1):
                (folder / f"{rep:02d}.txt").write_text(recording_text(synthetic_sequence(gesture, rng)))
    (base / "info.txt").write_text("--- FORMAT ---\nSystem.currentTimeMillis() ...\n")
    (base / "gestures.png").write_bytes(b"\x89PNG not really")
    return base


def zip_folder(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(folder.rglob("*")):
            bundle.write(path, path.relative_to(folder.parent).as_posix())
    return archive


@pytest.fixture(scope="session")
def synthetic_folder(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def synthetic_zip(synthetic_folder: Path, tmp_path_factory) -> Path:
    return zip_folder(synthetic_folder, tmp_path_factory.mktemp("zipped") / "gestures-dataset.zip")


@pytest.fixture(scope="session")
def records(synthetic_zip: Path):
    """The synthetic dataset, parsed (what stream builders take)."""
    from gesture_rnn.data.parsing import load_records

    return load_records(synthetic_zip, None)


@pytest.fixture(autouse=True, scope="session")
def _isolate_environment(tmp_path_factory) -> Iterator[None]:
    """No test — nor a module- or session-scoped fixture, which runs before function-scoped
    ones — reads the user's data, cache or tracking server unless it asks to, or writes to HOME."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("GESTURES_DATA", "MLFLOW_TRACKING_URI", "GESTURE_RNN_CACHE", "HYDRA_FULL_ERROR"):
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
        # every command a test runs, in this process or another, writes its outputs/ there
        patch.setenv("GESTURE_RNN_ROOT", str(tmp_path_factory.mktemp("root")))
        before = _checkout_outputs()
        yield
    left = sorted(_checkout_outputs() - before)
    assert not left, f"the test suite wrote into the checkout: {left[:5]}"


def _checkout_outputs() -> set[str]:
    """What outputs/ in the checkout holds, two levels down (a run folder is outputs/<task>/...)."""
    outputs = PROJECT_ROOT / "outputs"
    found = [outputs, *outputs.glob("*"), *outputs.glob("*/*")] if outputs.exists() else []
    return {str(p.relative_to(PROJECT_ROOT)) for p in found}


def compose_train_config(root: Path, overrides: list[str], run_dir: str = "outputs/run") -> DictConfig:
    """The config ``python train.py <overrides>`` would run, with outputs under ``root``."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=[
                f"paths.root_dir={root}",
                f"data.cache_dir={root}/cache",
                "console=quiet",
                *overrides,
            ],
            return_hydra_config=True,
        )
    # Hydra sets the run dir only for a real run; do what it would do.
    HydraConfig.instance().set_config(cfg)
    output_dir = root / run_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    with open_dict(cfg):
        cfg.paths.output_dir = str(output_dir)
        del cfg.hydra
    return cfg


@pytest.fixture
def train_config(tmp_path: Path, synthetic_zip: Path):
    """Factory: ``train_config("model.net.hidden=8", ...)`` on the synthetic data, isolated in tmp_path."""

    def make(*overrides: str) -> DictConfig:
        return compose_train_config(tmp_path, [f"data.path={synthetic_zip}", *overrides])

    yield make
    GlobalHydra.instance().clear()


@pytest.fixture
def real_data() -> Iterator[Path]:
    if not REAL_DATA:
        pytest.skip("set GESTURES_DATA to the real gestures-dataset.zip to run this test")
    yield Path(REAL_DATA)


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Real file systems that refuse writes: ``read_only`` (a read-only tmpfs) and ``full`` (a
    tmpfs filled to its last byte). Mounting needs root; a user who may not mount gets a folder
    without write permission for ``read_only``, and the full-disk cases are skipped."""
    import errno
    import shutil
    import subprocess

    mounted: list[Path] = []

    def mount(path: Path, options: str) -> bool:
        path.mkdir()
        if shutil.which("mount") is None or os.geteuid() != 0:
            return False
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        )
        if done.returncode == 0:
            mounted.append(path)
        return done.returncode == 0

    folders = {"read_only": tmp_path / "read-only", "full": tmp_path / "full"}
    if not mount(folders["read_only"], "ro,size=64k"):
        if os.geteuid() == 0:
            pytest.skip("needs a read-only file system: root here may not mount a tmpfs")
        folders["read_only"].chmod(0o555)
    if mount(folders["full"], "size=16k"):
        filler = os.open(folders["full"] / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(filler, b"\0" * 1024):
                pass
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(filler)
    else:
        folders.pop("full")
    try:
        yield folders
    finally:
        for path in mounted:
            subprocess.run(["umount", str(path)], check=False)
