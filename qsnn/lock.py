"""The lock of an output folder: an exclusive ``fcntl.flock`` on ``.<name>.qsnn-lock``
beside it, holding the writer's pid, so that a second writer stops with one line naming
that pid. The file is deleted by its holder on release (while still locked); an opener
checks after locking that the file it locked is still the one at the path. A killed
holder's lock is released by the kernel; its file is deleted by the next
:func:`qsnn.outdir.sweep` (:meth:`Lock.remove_if_free`).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

from qsnn.errors import QsnnError


class Lock:
    """An exclusive ``flock`` on ``.<name>.qsnn-lock`` beside ``out`` (holder's pid inside)."""

    def __init__(self, out: Path) -> None:
        self.path = out.parent / f".{out.name}.qsnn-lock"
        self.out = out
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise one line naming the holder's pid."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise QsnnError(f"{self.out} is being written by another qsnn process "
                                f"(pid {self._holder()}); wait for it to finish") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:        # not unlinked by a releasing holder in between
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    @staticmethod
    def remove_if_free(path: Path) -> None:
        """Delete a lock file that no process holds (left by a killed one)."""
        try:
            fd = os.open(path, os.O_RDWR)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)     # still held: a waiting opener sees the inode go
        except OSError:
            pass
        finally:
            os.close(fd)

    def release(self) -> None:
        """Delete the lock file (while still holding it) and unlock."""
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None
