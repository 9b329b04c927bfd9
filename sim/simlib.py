"""The simulation helpers live in the package (``qsnn.hw.simlib``, also used by
``qsnn verify``); the benches in ``sim/`` import them under this short name."""

from qsnn.hw.simlib import *  # noqa: F403

