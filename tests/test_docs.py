"""The front door: every command the README shows composes as written, and the documentation
site builds strictly (a broken link or a page left out of the navigation fails)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF_DIR, PROJECT_ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser

from gesture_rnn.commands.cli import canonical_overrides

ENTRY_POINTS = {"train.py": "train", "tune.py": "tune", "evaluate.py": "evaluate", "predict.py": "predict",
                "export.py": "export", "personalize.py": "personalize", "teach.py": "teach"}  # fmt: skip


def readme_commands() -> list[tuple[str, list[str]]]:
    """(config name, overrides) of every ``python <entry point> ...`` line in the README's code
    blocks; lines with a placeholder (``<checkpoint>``) name the user's own files."""
    text = (PROJECT_ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if len(words) < 2 or words[0] != "python" or words[1] not in ENTRY_POINTS or "<" in line:
                continue
            commands.append((ENTRY_POINTS[words[1]], [w for w in words[2:] if w != "-m"]))
    return commands


def test_the_readme_shows_the_design_cards_command_first():
    assert readme_commands()[0] == ("train", ["model.hidden=256", "model.layers=2"])


def first_job(overrides: list[str]) -> list[str]:
    """A multirun's first job: each discrete sweep (``seed=0,1,2``, ``choice(...)``) at its first
    value, after Hydra's own parser has read every override."""
    job = []
    for override in OverridesParser.create().parse_overrides(overrides):
        if override.is_discrete_sweep():
            job.append(f"{override.get_key_element()}={next(override.sweep_string_iterator())}")
        elif not override.is_sweep_override():
            job.append(override.input_line)
    return job


@pytest.mark.parametrize(
    ("config", "overrides"), readme_commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_every_readme_command_composes_as_written(config, overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        compose(config_name=config, overrides=first_job(canonical_overrides(overrides)))
    GlobalHydra.instance().clear()


@pytest.mark.integration
def test_the_documentation_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.is_file() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (make install installs the dev extras)")
    command = [str(mkdocs) if mkdocs.is_file() else "mkdocs", "build", "--strict"]
    result = subprocess.run(
        [*command, "--site-dir", str(tmp_path / "site")],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "reports" / "watch.html").is_file(), "the reports are pages of the site"
    assert list((site / "api").rglob("*.html")), "API pages from the docstrings"
    home = (site / "index.html").read_text()
    # opened from disk it reads as over HTTP, offline: links to pages are files, search needs no
    # fetch, nothing is asked of another host
    assert 'href="training.html"' in home and (site / "search" / "search_index.js").is_file()
    pages = [p.read_text(errors="ignore") for p in site.rglob("*.html")]
    assert not any("fonts.googleapis" in page or "fonts.gstatic" in page for page in pages)
