"""Output folders that are never lost or half-written (docs/spec.md, "Output folders").

Every command that writes a folder (``qsnn train``, ``export``, ``hw``, ``bitstream``)
goes through this module:

1. **Validate first.** :func:`check` refuses, before anything is written, an output that
   is a file, that is the command's own input or an ancestor of it, that lies in a folder
   it cannot write, or that exists but is not recognisably this command's output
   (:func:`recognise`). ``--force`` never overrides this.
2. **Recognise.** A folder is a command's own output when it holds the marker
   ``.qsnn-output.json`` naming the command's kind ("run", "export", "hw", "bitstream"),
   or (folders written before markers existed) the kind's signature files
   (:data:`KINDS`), and every entry in it is one the kind writes or a later qsnn command
   adds (e.g. ``sim_build/`` from ``qsnn verify`` in an ``hw`` folder). Anything else is a
   foreign file, and the folder is refused.
3. **Lock.** :class:`Output` holds :class:`qsnn.lock.Lock` (an exclusive ``flock`` on
   ``.<name>.qsnn-lock`` beside the folder); a second writer gets one line naming the
   holder's pid.
4. **Stage and swap.** The new output is written into ``.<name>.qsnn-stage.<pid>.<rand>``
   beside the folder; the marker is written last, so a staging folder with a marker is
   complete. The swap renames the old folder aside (``.<name>.qsnn-old.<pid>.<rand>``),
   renames the staging folder in, then deletes the old one. A kill at any instant leaves
   the old or the new folder complete at ``<name>``, or (between the two renames) no
   ``<name>`` and both complete beside it: :func:`recover` finishes that swap (it rolls
   forward to the new folder) for the next reader or writer.
5. **Sweep.** Staging and old folders whose pid is no longer alive are deleted when the
   next command starts on the same parent folder (:func:`sweep`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import shutil
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from qsnn import atomic
from qsnn.errors import QsnnError
from qsnn.lock import Lock

MARKER = ".qsnn-output.json"
FORMAT = "qsnn-output"
# Test hook (the fault-injection test): SIGKILL this process at the N-th call of point();
# with KILL_COUNT_ENV set, append each point's name to that file instead.
KILL_ENV = "QSNN_TEST_KILL_AT_POINT"
KILL_COUNT_ENV = "QSNN_TEST_COUNT_POINTS"
_TEMP = re.compile(r"^\.(?P<name>.+)\.qsnn-(?P<what>stage|old)\.(?P<pid>\d+)\.[0-9a-f]+$")
# staging folders of qsnn versions before this module (tempfile.mkdtemp(".<name>."))
_LEGACY_STAGE = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}$")
# what ``atomic.atomic_write`` leaves when killed mid-write: ``.<file>.<random>.tmp``
_ATOMIC_TMP = "*.tmp"


@dataclass(frozen=True)
class Kind:
    """What one command writes: signature files (all present in an old output without a
    marker), and the entries it or later qsnn commands may put in its folder."""

    command: str
    signature: tuple[str, ...]
    entries: tuple[str, ...]      # fnmatch patterns of top-level names
    boards: bool = False          # also a folder per board (qsnn bitstream) and its lock


KINDS = {
    "run": Kind("qsnn train", ("config.yaml",), (
        "config.yaml", "last.pt", "best.pt", "metrics.jsonl", "curves.png", "result.json",
        "golden.json")),
    "export": Kind("qsnn export", ("model.json", "export_report.json"), (
        "model.json", "weights.npz", "golden", "model.qonnx.onnx", "model.nir",
        "export_report.json", "import_report.json")),      # qsnn import writes an IR too
    "hw": Kind("qsnn hw", ("params.json", "qsnn_top.v"), (
        "qsnn_*.v", "*.mem", "filelist.f", "filelist_uart.f", "qsnn_*.core", "params.json",
        "weights.bin", "sim_build", "sim_run", "sim_report.json", "*.fst", "*.vcd",
        "waves"), boards=True),
    "bitstream": Kind("qsnn bitstream", ("board_top.v",), (
        "board_top.v", "board_pll.v", "*.pcf", "*.lpf", "yosys.log", "yosys.out",
        "synth.json", "synth_stat.json", "nextpnr.log", "report_nextpnr.json", "board.asc",
        "board.config", "qsnn_*.bin", "qsnn_*.bit", "pack.log", "pll.log", "report.json")),
}


def _patterns(kind: Kind) -> tuple[str, ...]:
    """``kind.entries`` and, for a kind with board folders, each board of
    :data:`qsnn.hw.fpga.BOARDS` and its lock file."""
    if not kind.boards:
        return kind.entries
    from qsnn.hw.fpga import BOARDS

    return kind.entries + tuple(BOARDS) + tuple(f".{b}.qsnn-lock" for b in BOARDS)


# -- test hook ---------------------------------------------------------------------------
_points = 0


def point(name: str) -> None:
    """A named instant of an output's life (fault-injection hook; free when unset)."""
    global _points
    count_file = os.environ.get(KILL_COUNT_ENV)
    if count_file:
        with open(count_file, "a") as f:
            f.write(name + "\n")
    at = os.environ.get(KILL_ENV)
    if at:
        _points += 1
        if _points == int(at):
            os.kill(os.getpid(), signal.SIGKILL)


# -- recognising ---------------------------------------------------------------------------
def read_marker(folder: Path) -> dict | None:
    """The marker's content, or None when absent or unreadable."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def _ours(entry: str, kind: Kind, listed: Iterable[str]) -> bool:
    if entry in (MARKER, *listed) or fnmatch.fnmatch(entry, _ATOMIC_TMP):
        return True
    if _TEMP.match(entry):
        return True
    return any(fnmatch.fnmatch(entry, p) for p in _patterns(kind))


def foreign_entries(folder: Path, kind: str) -> list[str]:
    """Top-level entries of ``folder`` that ``kind`` (or a later qsnn command) did not write."""
    marker = read_marker(folder) or {}
    listed = marker.get("files", []) if marker.get("kind") == kind else []
    return sorted(e.name for e in folder.iterdir() if not _ours(e.name, KINDS[kind], listed))


def recognise(folder: Path, kind: str) -> str | None:
    """None if ``folder`` is ``kind``'s own output that a new one may replace, else why not."""
    k = KINDS[kind]
    marker = read_marker(folder)
    if marker is not None and marker.get("kind") != kind:
        return f"it holds the output of {KINDS.get(marker.get('kind'), k).command}"
    if marker is None and not all((folder / s).exists() for s in k.signature):
        return f"it is not the output of {k.command} (no {MARKER} or {k.signature[0]})"
    foreign = foreign_entries(folder, kind)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        return f"it holds files {k.command} did not write ({foreign[0]}{more})"
    return None


def _same_or_inside(a: Path, b: Path) -> bool:
    """True if ``a`` is ``b`` or lies inside it."""
    return a == b or b in a.parents


def check(out: str | Path, kind: str, inputs: Iterable[str | Path] = ()) -> None:
    """Refuse (one line) an output folder the command must not write or replace."""
    out = Path(out)
    real = out.resolve()
    for src in inputs:
        if _same_or_inside(Path(src).resolve(), real):
            what = "is" if Path(src).resolve() == real else "contains"
            raise QsnnError(f"output folder {out} {what} the input {src}: choose another --out")
    if out.is_symlink():
        raise QsnnError(f"output {out} is a symbolic link: give the folder it points to")
    if out.exists():
        if not out.is_dir():
            raise QsnnError(f"output {out} exists and is not a folder: choose another --out")
        why = recognise(out, kind) if any(out.iterdir()) else None
        if why:
            raise QsnnError(f"refusing to replace {out}: {why}; move it away or choose "
                            "another --out")
    _check_writable(out)


def _check_writable(out: Path) -> None:
    parent = _existing_parent(out.parent)
    if not parent.is_dir():
        raise QsnnError(f"cannot create {out}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise QsnnError(f"cannot write {out}: {parent} is not writable")


def make_parent(out: Path) -> None:
    """Create ``out``'s parent folder, or refuse (one line) when it cannot be."""
    _check_writable(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise QsnnError(f"cannot create {out.parent}: {exc.strerror}") from None


def staging_path(out: Path) -> Path:
    """A new staging folder name beside ``out`` carrying this process's pid."""
    return out.parent / f".{out.name}.qsnn-stage.{os.getpid()}.{secrets.token_hex(4)}"


def _existing_parent(p: Path) -> Path:
    p = p.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


# -- staging, sweeping, recovery ------------------------------------------------------------
def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _temps(parent: Path, name: str | None = None) -> list[tuple[Path, str, int]]:
    """qsnn staging/old folders in ``parent`` (of output ``name`` or all): (path, what, pid)."""
    found = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for e in entries:
        m = _TEMP.match(e.name)
        if m and (name is None or m["name"] == name):
            found.append((e, m["what"], int(m["pid"])))
    return found


def remove_tree(path: Path) -> None:
    """Delete a folder (or file) bottom-up, a point per entry (for the fault test)."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for f in files:
            point("delete")
            os.unlink(os.path.join(root, f))
        for d in dirs:
            p = os.path.join(root, d)
            os.unlink(p) if os.path.islink(p) else os.rmdir(p)
    os.rmdir(path)


def recover(out: str | Path) -> None:
    """Finish a swap that a killed command left half-done (``out`` missing, its new
    version complete in a staging folder or its old version renamed aside)."""
    out = Path(out)
    if out.exists() or out.is_symlink():
        return
    dead = [t for t in _temps(out.parent, out.name) if not _alive(t[2])]
    for old, what, pid in dead:
        if what != "old":
            continue
        staged = [p for p, w, q in dead if w == "stage" and q == pid and read_marker(p)]
        try:        # the new folder if it was complete, else the old one back
            os.rename(staged[0] if staged else old, out)
        except OSError:
            pass    # another process recovered it first
        return


def sweep(parent: Path) -> None:
    """Delete staging and old folders of dead qsnn processes in ``parent``, and lock files
    that no process holds."""
    for path, _, pid in _temps(parent):
        if not _alive(pid):
            name = _TEMP.match(path.name)["name"]
            recover(parent / name)
            if path.exists():
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()
    for path in parent.glob(".*.qsnn-lock"):
        Lock.remove_if_free(path)
    for path in parent.iterdir():
        if _legacy_staging(path):
            shutil.rmtree(path, ignore_errors=True)


def _legacy_staging(path: Path) -> bool:
    """A staging folder left by an older qsnn export/hw: a hidden ``.<name>.<8 chars>``
    folder holding only what those commands write (nothing of anyone else's)."""
    if _TEMP.match(path.name) or not _LEGACY_STAGE.match(path.name):
        return False            # (a current staging folder is swept by its pid only)
    if not path.is_dir() or path.is_symlink():
        return False
    if not any(path.iterdir()):
        return False
    return not (foreign_entries(path, "export") and foreign_entries(path, "hw"))


# -- writing ---------------------------------------------------------------------------------
class Output:
    """Write a command's output folder through a locked staging folder and a swap::

        check(out, "export", inputs=[run])          # before any work
        with Output(out, "export", inputs=[run]) as stage:
            write files into stage ...
        # normal exit: swapped in; exception: staging deleted, old output untouched

    :meth:`commit` swaps early (e.g. to publish a failure report, then raise)."""

    def __init__(self, out: str | Path, kind: str, inputs: Iterable[str | Path] = ()) -> None:
        self.out, self.kind, self.inputs = Path(out), kind, list(inputs)
        self.lock = Lock(self.out)
        self.stage: Path | None = None
        self.committed = False

    def __enter__(self) -> Path:
        make_parent(self.out)
        self.lock.acquire()
        try:
            sweep(self.out.parent)
            check(self.out, self.kind, self.inputs)
            point("locked")
            self.stage = staging_path(self.out)
            self.stage.mkdir()
            point("staging")
        except BaseException:
            self.lock.release()
            raise
        return self.stage

    def commit(self) -> None:
        """Write the marker (last), then swap the staging folder in."""
        if self.committed or self.stage is None:
            return
        write_marker(self.stage, self.kind)
        swap(self.stage, self.out)
        self.committed = True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            if not self.committed and self.stage is not None and self.stage.exists():
                shutil.rmtree(self.stage, ignore_errors=True)
            self.lock.release()


def write_marker(folder: Path, kind: str) -> None:
    """``.qsnn-output.json``: format, kind, command and the top-level entries written."""
    files = sorted(e.name for e in folder.iterdir() if e.name != MARKER)
    atomic.write_json(folder / MARKER, {"format": FORMAT, "version": 1, "kind": kind,
                                        "command": KINDS[kind].command, "files": files})
    point("marked")


def swap(new: Path, out: Path) -> None:
    """Replace ``out`` by the complete folder ``new``: old aside, new in, old deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.qsnn-old.{os.getpid()}.{secrets.token_hex(4)}"
        os.rename(out, old)
        point("aside")
    os.rename(new, out)
    point("swapped")
    if old is not None:
        remove_tree(old)
