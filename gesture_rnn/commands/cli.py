"""Entry-point glue: Hydra's composition errors and the project's errors as one short line and
an exit code (2: bad input, 130: interrupted) instead of a traceback.

Light imports only: ``python predict.py --help`` must not pay for Lightning or MLflow.
"""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from gesture_rnn.config.resolvers import PROJECT_ROOT
from gesture_rnn.errors import ConfigError, GestureRNNError, Interrupted
from gesture_rnn.utils.console import quiet_libraries

USER_ERROR_EXIT_CODE = 2


class _HeldStderr(io.StringIO):
    """Stands in for stderr while Hydra composes the config (see ``short_hydra_errors``)."""

    def __init__(self, real: io.TextIOBase) -> None:
        super().__init__()
        self.real = real


def release_stderr() -> None:
    """The config composed: from here on stderr is the real one (progress bars, warnings)."""
    held = sys.stderr
    if isinstance(held, _HeldStderr):
        sys.stderr = held.real
        sys.stderr.write(held.getvalue())


def _condensed(hydra_message: str) -> str:
    """Hydra's composition error in one or two lines: the problem, then the fix or the options."""
    lines = [line.strip() for line in hydra_message.splitlines() if line.strip()]
    lines = [line for line in lines if "HYDRA_FULL_ERROR" not in line]
    if not lines:
        return "error: the command line could not be composed into a config"
    head, rest = lines[0], lines[1:]
    if rest and rest[0].startswith("Available options"):
        options = []
        for line in rest[1:]:
            if line.startswith("Config search path"):
                break
            options.append(line)
        message = f"error: {head}; {rest[0].rstrip(':')}: {', '.join(options)}"
        if family := re.search(r"Could not find 'model/(\w+)'", head):  # model=lstm
            message += f"\n  network families are chosen with model/net={family.group(1)}"
        return message
    hint = next((line for line in rest if re.match(r"(To append|Did you mean)", line)), None)
    if not_a_setting := re.search(r"Could not override 'model\.net\.(\w+)'", head):
        return f"error: {family_refusal(not_a_setting.group(1), sys.argv[1:])}"
    moved = re.search(r"'model\.(bidirectional|packed)'", head)
    if moved:  # the spelling before networks became a node of their own
        hint = f"the network's settings are under model.net now: model.net.{moved.group(1)}=..."
    return f"error: {head}" + (f"\n  {hint}" if hint else "")


# ``model.<key>`` is the study's own spelling of the network's shape (``python train.py
# model.hidden=256 model.layers=2``); the config keeps one node per network (``model.net``)
NET_ALIASES = ("hidden", "layers", "dropout")
_ALIAS = re.compile(
    r"^(?P<prefix>~|\+{1,2})?model\.(?P<key>" + "|".join(NET_ALIASES) + r")(?P<rest>[=@].*|)$"
)
_NET_KEY = re.compile(r"^(?:~|\+{1,2})?model\.net\.(?P<key>\w+)=(?P<value>.*)$")


def canonical_overrides(args: list[str]) -> list[str]:
    """The command line with ``model.hidden/layers/dropout=...`` spelled ``model.net.<key>=...``,
    so Hydra, both sweepers (a command-line sweep replaces the search space's key) and MLflow
    see one name per setting. Both spellings with different values: a ConfigError (one spelling
    repeated keeps Hydra's rule: the last wins)."""
    last: dict[tuple[str, bool], tuple[str, str]] = {}  # (key, short spelling) -> (as typed, value)
    canonical: list[tuple[str, bool, str]] = []
    for arg in args:
        short = bool(alias := _ALIAS.match(arg))
        if alias:
            arg = f"{alias['prefix'] or ''}model.net.{alias['key']}{alias['rest']}"
        setting = _NET_KEY.match(arg)
        key = setting["key"] if setting else ""
        if setting:
            last[key, short] = (arg if not short else f"model.{key}={setting['value']}", setting["value"])
        canonical.append((key, short, arg))
    for (key, short), (typed, value) in last.items():
        if short and (key, False) in last and last[key, False][1] != value:
            raise ConfigError(
                f"{typed} and {last[key, False][0]} set the same setting to different values; "
                f"give one (model.{key} is short for model.net.{key})"
            )
    # both spellings with one value: the config's own spelling stays, once
    return [arg for key, short, arg in canonical if not (short and (key, False) in last)]


def family_refusal(key: str, args: list[str]) -> str:
    """A family refuses a setting it does not have, naming its own: the family is the one this
    command line chose (``model/net=``, else an experiment's override, else gru)."""
    conf = PROJECT_ROOT / "conf"
    family = "gru"
    for arg in args:
        if chosen := re.fullmatch(r"model/net=(\w+)", arg):
            family = chosen.group(1)
            break
        recipe = re.fullmatch(r"experiment=(\w+)", arg)
        recipe_file = conf / "experiment" / f"{recipe.group(1)}.yaml" if recipe else None
        override = (
            re.search(r"override /model/net: (\w+)", recipe_file.read_text())
            if recipe_file is not None and recipe_file.is_file()
            else None
        )
        if override:
            family = override.group(1)
    node = conf / "model" / "net" / f"{family}.yaml"
    settings = re.findall(r"^([a-z]\w*):", node.read_text(), flags=re.M) if node.is_file() else []
    return f"model.net.{key} is not a setting of the {family} network; its settings: {', '.join(settings)}"


def split_path_hint(args: list[str]) -> None:
    """``input=my recordings/a.txt`` unquoted reaches us as two arguments, the second without
    ``=`` (Hydra would say only that it cannot parse it): name the path and how to quote it."""
    for index, arg in enumerate(args[1:], start=1):
        before = args[index - 1]
        if "=" in arg or arg.startswith(("-", "~", "+")) or "=" not in before or before.startswith("-"):
            continue
        rest = list(itertools.takewhile(lambda a: "=" not in a and not a.startswith("-"), args[index:]))
        key, _, value = before.partition("=")
        joined = " ".join([value, *rest])
        raise ConfigError(
            f"{' '.join(rest)!r} is not a key=value override: if {key} is the path {joined!r}, "
            f"quote it: {key}='{joined}'"
        )


# the overrides that say where a run writes, and what a folder holds when it is a run's or a sweep's
OUTPUT_KEYS = ("hydra.run.dir", "hydra.sweep.dir", "paths.output_dir", "paths.root_dir", "paths.log_dir")
RUN_MARKERS = {".hydra", "metrics.json", "checkpoints", "evaluation", "folds", "multirun.yaml", ".sweep.lock",
               "sweeper.txt", "hyperopt_trials.json", "optimization_results.yaml", "cv_settings.json",
               "mlflow_run_id.txt", "config_resolved.yaml"}  # fmt: skip
SYSTEM_FOLDERS = ("/proc", "/sys", "/dev", "/boot", "/etc", "/bin", "/sbin", "/lib", "/usr")


def check_output_folders(args: list[str]) -> None:
    """Refuse, before Hydra creates anything, an output folder that cannot hold runs: a file (or a
    path through one), the filesystem's root or a system folder, or — for a run's or sweep's own
    folder — a folder holding other things than runs (a run never scatters its files there)."""
    for arg in args:
        key, sep, value = arg.lstrip("+").partition("=")
        if not sep or key not in OUTPUT_KEYS or not value or "${" in value:
            continue
        path = Path(value).expanduser().absolute()
        if (
            path == Path(path.anchor)
            or str(path).startswith(tuple(f"{d}/" for d in SYSTEM_FOLDERS))
            or str(path) in SYSTEM_FOLDERS
        ):
            raise ConfigError(
                f"{key}={value} is a system folder, not one for runs: choose a folder of your own"
            )
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            raise ConfigError(f"{key}={value}: {existing} is a file, not a folder")
        if key in ("paths.root_dir", "paths.log_dir") or not path.is_dir():
            continue  # a root holds outputs/ beside anything; a new folder is made for the run
        contents = [c.name for c in path.iterdir()]
        if contents and not (RUN_MARKERS & set(contents) or all(c.isdigit() for c in contents)):
            raise ConfigError(
                f"{key}={value} holds other things than runs (e.g. {sorted(contents)[0]!r}): choose a new "
                "or empty folder, or a run's own folder to continue it"
            )


# MLflow's HTTP client for this command's process (and its trials): 3 retries (about 14 s of
# back-off) and 30 s per request, unless the user set them
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def launch(main: Callable[[], object]) -> None:
    """Run a Hydra entry point with the project's command-line spellings and short errors."""
    quiet_libraries()
    # a lost tracking server costs seconds, not MLflow's default minutes of retries per call
    for variable, value in MLFLOW_HTTP_DEFAULTS.items():
        os.environ.setdefault(variable, value)
    with short_hydra_errors():
        try:
            split_path_hint(sys.argv[1:])
            sys.argv[1:] = canonical_overrides(sys.argv[1:])
            check_output_folders(sys.argv[1:])
        except ConfigError as err:
            release_stderr()
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT_CODE) from None
        main()


@contextlib.contextmanager
def short_hydra_errors() -> Iterator[None]:
    """Hold stderr while Hydra composes the config; if composition fails (unknown key or group
    option, bad override syntax), print a condensed one- or two-line error and exit 2 instead
    of Hydra's multi-line report. ``HYDRA_FULL_ERROR=1`` shows Hydra's own output."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        yield
        return
    held = _HeldStderr(sys.stderr)
    sys.stderr = held
    try:
        yield
    except SystemExit as exit_:
        if sys.stderr is held and exit_.code not in (0, None):  # failed before any task ran
            sys.stderr = held.real
            print(_condensed(held.getvalue()), file=sys.stderr)
            raise SystemExit(USER_ERROR_EXIT_CODE) from None
        raise
    finally:
        release_stderr()


T = TypeVar("T")
INTERRUPTED_EXIT_CODE = 130  # the shell's code for a Ctrl-C'd command


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def exit_on_user_error(task: Callable[..., T]) -> Callable[..., T]:
    """Turn a GestureRNNError into ``error: <message>`` and exit 2, an interrupt into
    ``interrupted: <how to resume>`` and exit 130.

    ``HYDRA_FULL_ERROR=1`` keeps the traceback; in a multirun the error propagates so the
    launcher/sweeper can record the failed job (an interrupt stops the sweep).
    """

    @functools.wraps(task)
    def wrapper(*args, **kwargs) -> T:
        release_stderr()
        try:
            return task(*args, **kwargs)
        except GestureRNNError as err:
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun():
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(USER_ERROR_EXIT_CODE)
        except Interrupted as err:
            if _in_multirun():
                raise
            print(f"interrupted: {err}", file=sys.stderr)
            sys.exit(INTERRUPTED_EXIT_CODE)

    return wrapper


@exit_on_user_error
def run_task(cfg: DictConfig) -> float | None:
    """What train.py and tune.py run: one training, or with ``cv=`` a cross-validation; returns
    ``optimized_metric`` (with ``cv=``, its mean over the folds) for sweepers."""
    from gesture_rnn.tracking.trials import metric_value

    if cfg.get("cv"):  # Lightning is imported where the folds train (cv.jobs > 1: workers only)
        from gesture_rnn.commands.cross_validate import cross_validate

        return metric_value(cross_validate(cfg), cfg.get("optimized_metric"))
    from gesture_rnn.commands.train import train

    return metric_value(train(cfg), cfg.get("optimized_metric"))
