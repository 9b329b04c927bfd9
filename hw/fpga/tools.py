"""Finding and running the YoWASP tools.

The YoWASP tools see the host file system only through relative paths below their
working folder (``/tmp`` is private to them), so every tool runs inside the design
folder with relative file names.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from qsnn.errors import QsnnError
from qsnn.extras import extra_of, install_hint
from qsnn.hw.fpga.boards import Board

PR_SET_PDEATHSIG = 1          # linux/prctl.h


def find_tool(name: str, package: str) -> str:
    """Path of a YoWASP tool (next to this Python first, then PATH) or a one-line error
    naming the qsnn extra that installs ``package`` (its PyPI distribution)."""
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return str(exe)
    found = shutil.which(name)
    if found is None:
        raise QsnnError(f"{name} not found: {install_hint(extra_of(package))} "
                        f"(the {package} package)")
    return found


def toolchain(board: Board, pll: bool) -> dict[str, str]:
    """Every tool the flow of ``board`` needs, checked before any work is done."""
    fam = board.fpga
    need = dict(fam.tools)
    if pll:
        tool, pkg = fam.pll_tool
        need[tool] = pkg
    return {tool: find_tool(tool, pkg) for tool, pkg in need.items()}


def run(cmd: list[str], cwd: Path, log: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``; its command line and output go to ``log``. The tool dies
    with qsnn (:func:`die_with_parent`)."""
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False,
                         preexec_fn=die_with_parent)
    log.write_text(f"$ {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res


def die_with_parent() -> None:
    """In the tool's process: have the kernel SIGKILL it when qsnn dies (Linux prctl
    PR_SET_PDEATHSIG), so that a killed ``qsnn bitstream`` leaves no tool writing into
    its staging folder."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def first_error(text: str) -> str:
    """The first ``ERROR:``/``Error:`` line of a tool's output, else its last line."""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("ERROR:") or s.startswith("Error:") or s.startswith("error:"):
            return s
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    return lines[-1] if lines else "no output"
