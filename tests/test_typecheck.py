"""The type checker of `make lint`: mypy with [tool.mypy] of pyproject.toml, run by the
pre-commit hook `mypy` (.ci/typecheck), catches a type error (a few seconds)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _mypy(path: Path, cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
           "--cache-dir", str(cache), str(path)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_mypy_config_catches_a_type_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    res = _mypy(bad, tmp_path / "cache")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "bad.py:2: error: Incompatible return value type" in res.stdout
    bad.write_text("def f(x: int) -> str:\n    return str(x)\n")
    assert _mypy(bad, tmp_path / "cache").returncode == 0


def test_lint_runs_the_mypy_hook():
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    mypy = [h for h in hooks if h["id"] == "mypy"]
    assert mypy and mypy[0]["entry"].endswith(".ci/typecheck")
    assert "pre-commit run --all-files" in (ROOT / "Makefile").read_text()


def test_report_paths_are_the_source_folders():
    loader = importlib.machinery.SourceFileLoader("typecheck", str(ROOT / ".ci" / "typecheck"))
    spec = importlib.util.spec_from_loader("typecheck", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    prefixes = {"build/typecheck/qsnn/": "qsnn/", "build/typecheck/qsnn/hw/": "hw/"}
    line = "build/typecheck/qsnn/hw/layers.py:7: error: x"
    assert mod.real_path(line, prefixes) == "hw/layers.py:7: error: x"
    assert mod.real_path("Success: no issues", prefixes) == "Success: no issues"
