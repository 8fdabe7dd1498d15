"""Pages added to the documentation site at build time (mkdocs-gen-files runs this script).

- ``api/``: one page per module of ``gesture_rnn/``, rendered by mkdocstrings from the
  docstrings (static analysis; nothing is imported), and ``api/SUMMARY.md``, the nav that
  mkdocs-literate-nav reads. Modules and packages whose names start with ``_`` are skipped.
- ``reports/``: every file of the top-level ``reports/`` folder (the generated reports and their
  plots) and ``reports/SUMMARY.md``.
- ``architecture.md``: a copy of ``ARCHITECTURE.md``.

The package and the reports are walked on every build, so adding, moving or renaming a module
or a report needs no edit to mkdocs.yml. Links in the copied files are rewritten to their place
in the site; a link to a file that is not part of the site (source code, a config file) becomes
plain text, so the strict build never fails on a copied file.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "gesture_rnn"
REPORTS = "reports"
# first in the Reports section, in this order; any other report follows alphabetically
REPORT_ORDER = (
    "study",
    "loso",
    "ablation",
    "models",
    "new_wearer",
    "calibration",
    "personalize",
    "personalize_ensemble",
    "watch",
    "quantize",
    "bench",
    "serve",
)
# top-level files copied into the site: repository path -> site path
TOP_LEVEL = {"ARCHITECTURE.md": "architecture.md"}

# [text](target) and ![alt](target), with an optional "title"; [label]: target definitions
INLINE_LINK = re.compile(r'(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?P<title>\s+"[^"]*")?\)')
LINK_DEFINITION = re.compile(r"^(?P<label>\s{0,3}\[[^\]]+\]:\s*)(?P<target>\S+)(?P<rest>.*)$", re.MULTILINE)
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def api_pages() -> None:
    """One page per public module, and the nav of the API reference."""
    nav = mkdocs_gen_files.Nav()
    package_dir = ROOT / PACKAGE
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(ROOT)
        parts = relative.with_suffix("").parts
        folders = relative.parent.parts
        if any(part.startswith("_") for part in folders):
            continue  # a private package, or __pycache__
        if not all((ROOT.joinpath(*folders[: i + 1]) / "__init__.py").is_file() for i in range(len(folders))):
            continue  # not inside a regular package (a stray script or data folder)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            page = Path(*parts, "index.md")
        elif parts[-1].startswith("_"):
            continue
        else:
            page = relative.with_suffix(".md")
        nav[parts] = page.as_posix()
        identifier = ".".join(parts)
        with mkdocs_gen_files.open(Path("api", page), "w") as out:
            out.write(f"---\ntitle: {identifier}\n---\n\n::: {identifier}\n")
        mkdocs_gen_files.set_edit_path(Path("api", page), relative)
    with mkdocs_gen_files.open("api/SUMMARY.md", "w") as out:
        out.writelines(nav.build_literate_nav())


def copied_files() -> dict[str, str]:
    """Repository path -> site path of every file copied into the site."""
    copies = {src: dest for src, dest in TOP_LEVEL.items() if (ROOT / src).is_file()}
    reports = ROOT / REPORTS
    if reports.is_dir():
        for path in sorted(reports.rglob("*")):
            relative = path.relative_to(ROOT).as_posix()
            if path.is_file() and not any(part.startswith(".") for part in path.relative_to(reports).parts):
                copies[relative] = relative
    return copies


def site_path(repo_path: str, copies: dict[str, str]) -> str | None:
    """Where a repository file is in the site, or None when it is not part of it."""
    if repo_path in copies:
        return copies[repo_path]
    if repo_path.startswith("docs/") and (ROOT / repo_path).is_file():
        return repo_path.removeprefix("docs/")
    return None


def rewrite_links(text: str, source: str, dest: str, copies: dict[str, str]) -> str:
    """Links of ``source`` (a repository path) as seen from ``dest`` (its site path)."""
    source_dir = posixpath.dirname(source)
    dest_dir = posixpath.dirname(dest)

    def new_target(target: str) -> str | None:
        """The rewritten target; None when it points outside the site."""
        if target.startswith("#") or SCHEME.match(target) or target.startswith("/"):
            return target
        path, hash_, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(source_dir, path))
        found = site_path(repo_path, copies)
        if found is None:
            return None
        return posixpath.relpath(found, dest_dir or ".") + hash_ + anchor

    def inline(match: re.Match[str]) -> str:
        target = new_target(match["target"])
        if target is not None:
            return f"{match['bang']}[{match['text']}]({target}{match['title'] or ''})"
        text = match["text"].strip()
        return text if text else f"`{match['target']}`"

    def definition(match: re.Match[str]) -> str:
        target = new_target(match["target"])
        return f"{match['label']}{target}{match['rest']}" if target is not None else ""

    return LINK_DEFINITION.sub(definition, INLINE_LINK.sub(inline, text))


def title_of(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ")


def copies_and_reports_nav() -> None:
    copies = copied_files()
    for source, dest in copies.items():
        path = ROOT / source
        if path.suffix == ".md":
            text = rewrite_links(path.read_text(encoding="utf-8"), source, dest, copies)
            with mkdocs_gen_files.open(dest, "w", encoding="utf-8") as out:
                out.write(text)
            mkdocs_gen_files.set_edit_path(dest, source)
        else:
            with mkdocs_gen_files.open(dest, "wb") as out:
                out.write(path.read_bytes())

    pages = [
        Path(dest)
        for source, dest in copies.items()
        if dest.startswith(f"{REPORTS}/") and dest.endswith(".md")
    ]
    rank = {name: i for i, name in enumerate(REPORT_ORDER)}
    pages.sort(key=lambda page: (rank.get(page.stem, len(rank)), page.as_posix()))
    titles = {page: title_of(ROOT / page).replace("[", "(").replace("]", ")") for page in pages}
    repeated = {title for title in titles.values() if list(titles.values()).count(title) > 1}
    with mkdocs_gen_files.open(f"{REPORTS}/SUMMARY.md", "w", encoding="utf-8") as out:
        for page, title in titles.items():
            if title in repeated:  # two reports of one writer: tell them apart by file name
                title = f"{title} ({page.stem})"
            out.write(f"* [{title}]({page.relative_to(REPORTS).as_posix()})\n")


api_pages()
copies_and_reports_nav()
