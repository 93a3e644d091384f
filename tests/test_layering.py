"""DESIGN.md's import rules: which of our packages each package may import, and which heavy
libraries ``import fitness`` / ``import infoextract`` / ``import trainer`` must not pull in."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = {"infoextract", "fitness", "trainer", "esfit"}
ALLOWED = {"infoextract": set(), "fitness": {"infoextract"}, "trainer": set(), "esfit": OURS - {"esfit"}}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_packages_design_allows(package):
    wrong = {}
    for path in sorted((REPO / package).rglob("*.py")):
        bad = (_imports(path) & OURS) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(REPO))] = sorted(bad)
    assert not wrong, f"{package}/ may import only {sorted(ALLOWED[package]) or 'none of ours'}: {wrong}"


@pytest.mark.parametrize(("package", "forbidden"), [("fitness", ("torch", "transformers")),
                                                    ("infoextract", ("torch", "transformers")),
                                                    ("trainer", ("spacy",))])
def test_importing_a_library_does_not_load_what_it_must_not(package, forbidden):
    code = f"import sys, {package}; print(','.join(m for m in {forbidden!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import {package} loaded {out.stdout.strip()}"
