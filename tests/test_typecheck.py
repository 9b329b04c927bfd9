"""The type checker of `make lint`: mypy with [tool.mypy] of pyproject.toml, run by the
pre-commit hook `mypy` (.ci/typecheck), catches a type error (a few seconds; the first run
on a fresh clone fills build/mypy_cache, ~40 s)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: mypy depends on tomli there
    import tomli as tomllib

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


# Errors of the kinds mypy reported in these modules before they were made clean (a node of
# the RawNode union read as a FloatLIF; a Brevitas method called on a plain nn.Module).
PLANTED = {
    "export/lower.py": "def _planted(seg: Segment) -> float:\n    return seg[-1].unit\n",
    "export/qonnx_export.py": "def _planted(model: QSNN) -> Tensor:\n"
                              "    return model.blocks[0].layer.quant_weight()\n",
}


def test_typecheck_fails_on_an_error_in_lower_and_qonnx_export(tmp_path):
    """The hook itself (.ci/typecheck: the real config, the real files with one error
    each, via mypy's --shadow-file): both modules are checked, no override hides them."""
    args = []
    for rel, code in PLANTED.items():
        shadow = tmp_path / Path(rel).name
        shadow.write_text((ROOT / rel).read_text() + "\n\n" + code)
        args += ["--shadow-file", f"build/typecheck/qsnn/{rel}", str(shadow)]
    res = subprocess.run([sys.executable, str(ROOT / ".ci" / "typecheck"), *args], cwd=ROOT,
                         capture_output=True, text=True)
    assert res.returncode == 1, res.stdout + res.stderr
    for rel in PLANTED:
        n = len((ROOT / rel).read_text().splitlines()) + 4  # the planted return line
        assert f"{rel}:{n}: error:" in res.stdout, res.stdout


def test_no_module_is_exempt_from_the_check():
    """No [tool.mypy] override silences errors (ignore_errors) in qsnn's own modules."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        overrides = tomllib.load(f)["tool"]["mypy"]["overrides"]
    exempt = [o["module"] for o in overrides if o.get("ignore_errors")]
    assert not exempt, exempt


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
