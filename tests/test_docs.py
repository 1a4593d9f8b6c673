"""The documentation: the MkDocs site builds with ``--strict`` (no broken link, anchor or API
reference), the README's links resolve and its library example runs, and the configuration and
command-line pages list every setting and option the code has.

The site build needs the ``docs`` extra (also in ``test``); without MkDocs it skips with the
reason, except under ``CI=true``, where it must run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
import typer
from pydantic import BaseModel

from sparecast.cli import app
from sparecast.config import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"

# [text](target) outside code; images too. Code spans and blocks are removed first.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def _links(markdown: str) -> list[str]:
    text = _CODE_SPAN.sub("", _FENCE.sub("", markdown))
    return _LINK.findall(text)


def _slug(heading: str) -> str:
    """The anchor GitHub and MkDocs give a heading like ``## Tests, CI and services``."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = _FENCE.sub("", path.read_text())
    return {_slug(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` succeeds without a single warning."""
    if importlib.util.find_spec("mkdocs") is None:
        if _under_ci():
            pytest.fail("CI=true but mkdocs is not installed (pip install -e '.[docs]')")
        pytest.skip("mkdocs is not installed: pip install -e '.[docs]' to build the site")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p
    )
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner, not a problem of the site
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    problems = [line for line in output.splitlines() if re.match(r"\s*(WARNING|ERROR)", line)]
    assert not problems, "\n".join(problems)
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


def test_readme_links_resolve() -> None:
    """Every relative link of the README points to an existing file (and heading)."""
    broken = []
    for target in _links(README.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        path = (ROOT / path_part) if path_part else README
        if not path.exists():
            broken.append(f"{target}: no file {path.relative_to(ROOT)}")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert not broken, "broken links in README.md:\n" + "\n".join(broken)


def test_readme_is_short() -> None:
    """The README stays a front page; the details live in docs/."""
    assert len(README.read_text().splitlines()) <= 130


def test_readme_library_example_runs() -> None:
    """The README's Python example runs as printed."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M)
    assert blocks, "README.md has no python example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme_example"})
    assert "imapa" in out.getvalue() and "sb_class" in out.getvalue()


def _settings_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            keys += _settings_keys(ann, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def test_configuration_page_lists_every_setting() -> None:
    """docs/configuration.md has a row for every setting with its environment variable."""
    page = (DOCS / "configuration.md").read_text()
    missing = []
    for key in _settings_keys(Settings):
        env = "SPARECAST_" + key.upper().replace(".", "__")
        if f"| `{key}` | `{env}` |" not in page:
            missing.append(f"{key} ({env})")
    assert not missing, "settings missing from docs/configuration.md: " + ", ".join(missing)


def _commands(group: click.Group, prefix: str = "sparecast") -> dict[str, click.Command]:
    out: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        out[f"{prefix} {name}"] = command
        if isinstance(command, click.Group):
            out.update(_commands(command, f"{prefix} {name}"))
    return out


def test_cli_page_lists_every_command_and_option() -> None:
    """docs/cli.md names every command and each of its options."""
    page = (DOCS / "cli.md").read_text()
    missing = []
    for name, command in _commands(typer.main.get_command(app)).items():
        if f"`{name}`" not in page:
            missing.append(name)
        # options are listed in the section of the top-level command (a subcommand's in its
        # group's section), up to the next heading of the same level
        top = " ".join(name.split()[:2])
        section = page.partition(f"\n## `{top}`\n")[2].partition("\n## ")[0]
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help" and f"`{opt}" not in section:
                    missing.append(f"{name} {opt}")
    assert not missing, "missing from docs/cli.md: " + ", ".join(missing)
