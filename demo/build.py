"""``make demo``'s build: the wearer's page with its models, in ``outputs/demo/site``.

1. onnxruntime-web, pinned in ``demo/package-lock.json``, from the npm registry (``npm ci`` into
   ``outputs/demo/npm``): the page loads nothing from any other site, so it works offline.
2. The default models, trained here once and kept in ``outputs/demo/models``: the shipped recipe
   (``train.py experiment=best``, temperature-calibrated) exported as int8 ONNX, and the stream
   spotter (``train.py experiment=spotter``: U08 held out, its decision rule chosen on another
   user) exported as an int8 step model. Either can be replaced in the page by any exported model
   and its sidecar.
3. The page, those files and the dataset's pictograms, written to a temporary folder that is then
   renamed into place: a half-built site is never served.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import NoReturn

from gesture_rnn.config.resolvers import PROJECT_ROOT
from gesture_rnn.data import source
from gesture_rnn.errors import DataError

DEMO = Path(__file__).resolve().parent
PAGE = DEMO / "page"
OUT = PROJECT_ROOT / "outputs" / "demo"
ORT_FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
SPOTTER_TEST_USER = "U08"  # held out of the spotter's training: the page's new-wearer check
CLASSIFIER = ("classifier.onnx", "classifier.onnx.json")
SPOTTER = ("spotter.onnx", "spotter.json")


def fail(message: str) -> NoReturn:
    """One line on stderr and exit status 2, as every command of the project refuses bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def pinned_version() -> str:
    return json.loads((DEMO / "package.json").read_text())["dependencies"]["onnxruntime-web"]


def onnxruntime_web(npm_dir: Path = OUT / "npm") -> Path:
    """The pinned onnxruntime-web's ``dist`` folder, installed by ``npm ci`` from the lockfile
    when it is missing or another version."""
    installed = npm_dir / "node_modules" / "onnxruntime-web"
    lock = DEMO / "package-lock.json"
    up_to_date = (
        (installed / "package.json").is_file()
        and json.loads((installed / "package.json").read_text())["version"] == pinned_version()
        and (npm_dir / "package-lock.json").is_file()
        and (npm_dir / "package-lock.json").read_bytes() == lock.read_bytes()
    )
    if not up_to_date:
        npm = shutil.which("npm")
        if npm is None:
            fail("npm is missing: install Node.js (e.g. apt-get install nodejs npm)")
        npm_dir.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(DEMO / name, npm_dir / name)
        command = [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
        done = subprocess.run(command, cwd=npm_dir, capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
            fail(f"npm ci of onnxruntime-web {pinned_version()} failed: {reason}")
    return installed / "dist"


def dataset(data: Path | None) -> Path:
    """``source.dataset_on_disk``, its refusal in one line."""
    try:
        return source.dataset_on_disk(data)
    except DataError as err:
        fail(str(err))


def pictograms(data: Path | None) -> bytes | None:
    """The dataset's ``gestures.png`` (20 pictograms, 4 x 5), if the data is its zip or folder."""
    if data is None:
        return None
    if data.is_dir():
        found = sorted(data.rglob("gestures.png"))
        return found[0].read_bytes() if found else None
    if zipfile.is_zipfile(data):
        with zipfile.ZipFile(data) as archive:
            names = [n for n in archive.namelist() if n.endswith("/gestures.png") or n == "gestures.png"]
            return archive.read(names[0]) if names else None
    return None


def assemble_site(site: Path, dist: Path, models: Path | None, pictogram_png: bytes | None) -> Path:
    """The page, onnxruntime-web's files, the models found in ``models`` (either may be missing:
    the wearer then chooses one in the page) and the pictograms, renamed into ``site`` at once."""
    site.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{site.name}.", dir=site.parent))
    try:
        shutil.copytree(PAGE, scratch, dirs_exist_ok=True)
        (scratch / "ort").mkdir()
        for name in ORT_FILES:
            shutil.copyfile(dist / name, scratch / "ort" / name)
        (scratch / "models").mkdir()
        for name in (*CLASSIFIER, *SPOTTER):
            if models is not None and (models / name).is_file():
                shutil.copyfile(models / name, scratch / "models" / name)
        if pictogram_png:
            (scratch / "gestures.png").write_bytes(pictogram_png)
        old = site.with_name(f".{site.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if site.exists():
            site.replace(old)
        scratch.replace(site)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return site


def train_and_export(
    what: str, overrides: list[str], files: tuple[str, str], data: Path, models: Path, exported: tuple = ()
) -> float:
    """``train.py <overrides>`` in ``models/<what>-run``, then ``export.py quantize=int8`` to
    ``files``; seconds taken (0 when the files are kept from an earlier build)."""
    if all((models / name).is_file() for name in files):
        return 0.0
    started = time.perf_counter()
    run = models / f"{what}-run"
    shutil.rmtree(run, ignore_errors=True)
    command = [
        sys.executable,
        str(PROJECT_ROOT / "train.py"),
        *overrides,
        f"hydra.run.dir={run}",
        f"data.path={data}",
    ]
    print(f"  training the {what}: " + " ".join(command[1:]), flush=True)
    if subprocess.run(command, cwd=PROJECT_ROOT).returncode != 0:
        fail(f"training the demo's {what} failed (its run folder: {run})")
    from gesture_rnn.tracking.trials import tested_checkpoint

    command = [sys.executable, str(PROJECT_ROOT / "export.py"), f"ckpt_path={tested_checkpoint(run)}",
               "quantize=int8", f"out={models / files[0]}", *exported]  # fmt: skip
    if subprocess.run(command, cwd=PROJECT_ROOT).returncode != 0:
        fail(f"exporting the demo's {what} failed")
    return time.perf_counter() - started


def train_classifier(data: Path, models: Path) -> float:
    """``train.py experiment=best`` (temperature-calibrated), exported as int8 ONNX."""
    overrides = ["experiment=best", "seed=0", "logger=none", "console=quiet"]
    teachable = ("teachable=true", f"data_path={data}")  # the page teaches gestures of one's own
    return train_and_export("classifier", overrides, CLASSIFIER, data, models, teachable)


def train_spotter(data: Path, models: Path) -> float:
    """``train.py experiment=spotter`` (U08 held out; its progress shown and its MLflow run logged,
    as every training's), exported as the int8 step model and its sidecar."""
    overrides = ["experiment=spotter", "seed=0", f"data.test_users=[{SPOTTER_TEST_USER}]"]
    return train_and_export("spotter", overrides, SPOTTER, data, models)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m demo.build", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--web-only", action="store_true", help="only install onnxruntime-web")
    args = parser.parse_args(argv)
    data = None if args.web_only else dataset(args.data)  # refused before anything is installed
    dist = onnxruntime_web(args.out / "npm")
    if data is None:
        print(f"  onnxruntime-web {pinned_version()}  {dist}")
        return
    models = args.out / "models"
    models.mkdir(parents=True, exist_ok=True)
    seconds = {"classifier": train_classifier(data, models), "spotter": train_spotter(data, models)}
    if any(seconds.values()):  # what make demo_report says a first make demo costs
        record = models / "build.json"
        kept = json.loads(record.read_text()) if record.is_file() else {}
        fresh = {f"{name}_s": round(took, 1) for name, took in seconds.items() if took}
        record.write_text(json.dumps({**kept, **fresh}, indent=1) + "\n")
    for name, took in seconds.items():
        print(f"  {name}: " + (f"trained in {took:.0f} s" if took else "kept from an earlier make demo"))
    site = assemble_site(args.out / "site", dist, models, pictograms(data))
    print(f"  page  {site}")


if __name__ == "__main__":
    main()
