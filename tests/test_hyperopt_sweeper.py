"""The hyperopt sweeper on a cheap task: grammar, determinism, failures, resume, TPE vs random."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_ROOT
from omegaconf import OmegaConf

from hydra_plugins.hyperopt_sweeper._impl import STATE_FILE, HyperoptSweeperImpl
from hydra_plugins.hyperopt_sweeper._space import parse_search_space

APP = PROJECT_ROOT / "tests" / "sweep_app.py"


def sweep(sweep_dir: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        str(APP),
        "-m",
        "hydra/sweeper=hyperopt",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.seed=0",
        # TPE takes over after 2 random trials, so the determinism and resume tests cover TPE
        "hydra.sweeper.n_startup_trials=2",
        *overrides,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def results(sweep_dir: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(sweep_dir / "optimization_results.yaml"))


def trial_params(sweep_dir: Path) -> list[dict]:
    state = HyperoptSweeperImpl._load_state_file(sweep_dir / STATE_FILE)
    return [record.params for record in state.records]


def sample(argument: str, draws: int = 200) -> list:
    """Values the sweeper would put in the override, drawn from the prior."""
    from hyperopt import pyll

    space, _ = parse_search_space([argument])
    ((_key, dim),) = space.items()
    rng = np.random.default_rng(0)
    return [dim.decode(pyll.stochastic.sample(dim.expression, rng=rng)) for _ in range(draws)]


@pytest.mark.parametrize(
    ("argument", "check"),
    [
        ("m.c=choice(64,128,256)", lambda v: set(v) == {64, 128, 256}),
        ("m.c=choice(adam,sgd)", lambda v: set(v) == {"adam", "sgd"}),
        ("m.r=range(1,4)", lambda v: set(v) == {1, 2, 3}),
        ("m.r=range(16,65,16)", lambda v: set(v) == {16, 32, 48, 64}),
        ("m.f=interval(0.0,0.5)", lambda v: all(isinstance(x, float) and 0 <= x <= 0.5 for x in v)),
        (
            "m.l=tag(log,interval(1e-4,1e-2))",
            lambda v: all(1e-4 <= x <= 1e-2 for x in v) and np.median(v) < 2e-3,  # log-uniform: median 1e-3
        ),
    ],
)
def test_every_distribution_of_the_override_grammar(argument, check):
    assert check(sample(argument))


def optuna_values(argument: str, draws: int = 200) -> list:
    """Values the Optuna sweeper would put in the override for the same argument."""
    import optuna
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    (override,) = OverridesParser.create().parse_overrides([argument])
    distribution = create_optuna_distribution_from_override(override)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [study.ask({"x": distribution}).params["x"] for _ in range(draws)]


@pytest.mark.parametrize(
    ("argument", "low", "high"),
    [
        ("m.h=int(interval(32,512))", 32, 512),
        ("m.h=tag(log,int(interval(2,64)))", 2, 64),
        ("m.f=interval(0.1,0.5)", 0.1, 0.5),
        ("m.l=tag(log,interval(1e-4,1e-2))", 1e-4, 1e-2),
        ("m.r=range(5,31,5)", 5, 30),
    ],
)
def test_both_sweepers_give_values_of_the_same_type_and_range(argument, low, high):
    ours, theirs = sample(argument), optuna_values(argument)
    assert {type(v) for v in ours} == {type(v) for v in theirs}, (argument, ours[:3], theirs[:3])
    assert all(low <= v <= high for v in ours) and all(low <= v <= high for v in theirs)
    assert len(set(ours)) > 1


def test_no_shipped_search_space_uses_a_range_the_two_sweepers_read_differently():
    """The Optuna sweeper also draws a range's stop when it lies on the step grid (range(1,4) gives
    1..4; Hydra and hyperopt: 1..3): the shipped spaces write such integers as int(interval(a,b))."""
    assert sorted(set(optuna_values("m.r=range(1,4)"))) == [1, 2, 3, 4], "the Optuna sweeper's reading"
    from hydra.core.override_parser.overrides_parser import OverridesParser

    for space in sorted((PROJECT_ROOT / "conf" / "search_space").glob("*.yaml")):
        for key, value in OmegaConf.to_container(OmegaConf.load(space)).items():
            (override,) = OverridesParser.create().parse_overrides([f"{key}={value}"])
            if override.is_range_sweep():
                sweep = override.value()
                on_grid = (sweep.stop - sweep.start) % (sweep.step or 1) == 0
                assert not on_grid, f"{space.name}: {key}={value} reads differently in the two sweepers"


def test_fixed_overrides_are_passed_to_every_trial():
    space, fixed = parse_search_space(["a=choice(1,2)", "b=3", "trainer.max_epochs=5"])
    assert list(space) == ["a"] and fixed == ["b=3", "trainer.max_epochs=5"]


@pytest.mark.integration
def test_a_sweep_finds_the_optimum_and_writes_its_results(tmp_path):
    result = sweep(tmp_path / "s", "hydra.sweeper.n_trials=20", "x=interval(0.0,5.0)", "c=choice(a,b)")
    best = results(tmp_path / "s")
    assert best["n_trials"] == 20 and best["n_failures"] == 0
    assert best["best_params"]["c"] == "b" and abs(best["best_params"]["x"] - 2) < 0.75
    assert "rank" in result.stdout and "value" in result.stdout, "a ranked table is printed"


@pytest.mark.integration
def test_the_same_seed_gives_the_same_trials(tmp_path):
    args = ("hydra.sweeper.n_trials=6", "x=interval(0.0,5.0)", "n=range(1,5)")
    sweep(tmp_path / "a", *args)
    sweep(tmp_path / "b", *args)
    sweep(tmp_path / "c", *args, "hydra.sweeper.seed=1")
    assert trial_params(tmp_path / "a") == trial_params(tmp_path / "b")
    assert trial_params(tmp_path / "a") != trial_params(tmp_path / "c")


@pytest.mark.integration
def test_failed_and_nan_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    sweep(
        tmp_path / "s",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.max_failure_rate=1.0",
        "x=interval(0.0,5.0)",
        "fail_above=3.0",
        "c=choice(a,nan)",
    )
    out = results(tmp_path / "s")
    assert out["n_trials"] == 8 and 0 < out["n_failures"] < 8
    errors = " ".join(f["error"] for f in out["failures"])
    assert "above 3.0" in errors or "NaN" in errors


@pytest.mark.integration
def test_too_many_failures_stop_the_sweep_with_a_clear_error(tmp_path):
    result = sweep(
        tmp_path / "s",
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.max_failure_rate=0.2",
        "x=interval(0.0,5.0)",
        "fail_above=-1",
        check=False,
    )
    assert result.returncode != 0
    assert "max_failure_rate=0.2" in result.stderr
    assert results(tmp_path / "s")["n_failures"] >= 1


@pytest.mark.integration
def test_resume_continues_without_repeating_or_losing_trials(tmp_path):
    args = ("x=interval(0.0,5.0)", "n=range(1,5)")
    sweep(tmp_path / "full", "hydra.sweeper.n_trials=6", *args)
    sweep(tmp_path / "part", "hydra.sweeper.n_trials=3", *args)  # as if interrupted after 3 trials
    sweep(tmp_path / "part", "hydra.sweeper.n_trials=6", "hydra.sweeper.resume=true", *args)
    assert trial_params(tmp_path / "part") == trial_params(tmp_path / "full")
    assert results(tmp_path / "part")["n_trials"] == 6


@pytest.mark.integration
def test_an_existing_sweep_is_not_overwritten_without_resume(tmp_path):
    sweep(tmp_path / "s", "hydra.sweeper.n_trials=2", "x=interval(0.0,5.0)")
    result = sweep(tmp_path / "s", "hydra.sweeper.n_trials=2", "x=interval(0.0,5.0)", check=False)
    assert result.returncode != 0 and "hydra.sweeper.resume=true" in result.stderr


def _minimise(algo: str, seed: int, n_trials: int = 30) -> float:
    """In-process ask/tell through the sweeper's own methods on f(x, y) = (x-1)^2 + (y+2)^2."""
    sweeper = HyperoptSweeperImpl(
        algo=algo,
        seed=seed,
        n_trials=n_trials,
        n_jobs=1,
        direction="minimize",
        max_failure_rate=0.5,
        resume=False,
        params=None,
        n_startup_trials=10,
    )
    space, _ = parse_search_space(["x=interval(-10.0,10.0)", "y=interval(-10.0,10.0)"])
    from hyperopt.base import Domain

    from hydra_plugins.hyperopt_sweeper._impl import SweepState, TrialRecord

    domain = Domain(lambda _: 0.0, {k: d.expression for k, d in space.items()})
    state = SweepState()
    for number in range(n_trials):
        (doc,) = sweeper._ask(state, domain, 1)
        p = sweeper._decode(doc, space)
        sweeper._tell(state, doc, TrialRecord(number, p, (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2))
        state.trials.refresh()
    return min(r.value for r in state.records)


def test_tpe_beats_random_search_at_equal_trials():
    tpe = np.mean([_minimise("tpe", seed) for seed in range(8)])
    rand = np.mean([_minimise("random", seed) for seed in range(8)])
    assert tpe < rand and math.isfinite(tpe)


def test_a_later_override_replaces_an_earlier_one():
    space, fixed = parse_search_space(
        ["epochs=range(5,31,5)", "hidden=choice(1,2)", "epochs=3", "lr=1", "lr=interval(0.1,1.0)"]
    )
    assert sorted(space) == ["hidden", "lr"] and fixed == ["epochs=3"]


@pytest.mark.integration
def test_batched_sweeps_repeat_and_agree_with_a_serial_one_during_the_random_start_up(tmp_path):
    """Same seed and n_jobs: the same trials. Serial and batched sweeps share the random start-up
    trials; afterwards TPE sees different finished trials when it is asked, so they differ."""
    args = (
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_startup_trials=3",
        "x=interval(0.0,5.0)",
        "n=range(1,5)",
    )
    sweep(tmp_path / "serial", *args)
    sweep(tmp_path / "batched", *args, "hydra.sweeper.n_jobs=3")
    sweep(tmp_path / "batched_again", *args, "hydra.sweeper.n_jobs=3")
    batched = trial_params(tmp_path / "batched")
    assert batched == trial_params(tmp_path / "batched_again")
    assert batched[:3] == trial_params(tmp_path / "serial")[:3]
