"""pytest set-up for the cocotb + Verilator benches (``pytest sim/ -n 2``)."""

from __future__ import annotations

import os
import random

import pytest
import simlib  # sim/ is on pytest's pythonpath (pyproject.toml)


def pytest_configure(config):
    """A missing simulator is a set-up error, not a skipped test: stop with one line."""
    try:
        simlib.ensure_verilator()
    except RuntimeError as e:
        raise pytest.UsageError(str(e)) from None


@pytest.fixture
def sim_seed(request) -> int:
    """Stimulus seed: $QSNN_SIM_SEED if set, else random; reported when the test fails."""
    env = os.environ.get("QSNN_SIM_SEED")
    seed = int(env, 0) if env else random.SystemRandom().randrange(1, 2**31)
    request.node.qsnn_seed = seed
    return seed


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    seed = getattr(item, "qsnn_seed", None)
    if seed is not None and report.failed:
        report.sections.append(("qsnn sim seed", f"QSNN_SIM_SEED={seed}"))
    return report
