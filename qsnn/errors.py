"""Error type for bad user input.

Every problem a user can cause (unknown config key, missing data, corrupt
checkpoint, ...) raises :class:`QsnnError` with a one-line message naming the
problem. The CLI prints ``qsnn: error: <message>`` and exits with status 2.
"""

from __future__ import annotations


class QsnnError(Exception):
    """A user-facing error: the message is one line that names the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))
