"""The served app as a child process: started, its output streamed line by line, stopped.

The app runs apart from the dashboard so that a busy or crashing app cannot freeze the
screen, and so that uvicorn's ``--reload`` and ``--workers`` (which fork and restart) work
as they do without asgispy. The child gets its own process group: stopping it stops the
reloader and every worker with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence

__all__ = ["ChildProcess"]

_GRACE = 5.0


class ChildProcess:
    """One command, run with its stdout and stderr merged into lines for ``on_line``."""

    def __init__(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.process: asyncio.subprocess.Process | None = None
        self.returncode: int | None = None
        self.last_lines: list[str] = []
        self._stopping = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was asked for: the exit that follows is not a crash."""
        return self._stopping

    async def run(self, on_line: Callable[[str], None]) -> int:
        """Start the command, pass on every line it prints, and return its exit code."""
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        # The child's colours and progress bars are for a terminal; the panel shows plain lines.
        env.setdefault("NO_COLOR", "1")
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.cwd,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        stream = self.process.stdout
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: take what is there
                raw = await stream.read(64 * 1024)
            if not raw:
                break
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.last_lines = [*self.last_lines[-19:], line]
            on_line(line)
        self.returncode = await self.process.wait()
        return self.returncode

    async def stop(self, grace: float = _GRACE) -> int | None:
        """Ask the child (and its process group) to stop; kill it if it has not within ``grace``."""
        self._stopping = True
        process = self.process
        if process is None or process.returncode is not None:
            return process.returncode if process is not None else None
        self._signal(signal.SIGINT if sys.platform != "win32" else signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except asyncio.TimeoutError:
            self._signal(signal.SIGKILL if sys.platform != "win32" else signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), grace)
        return process.returncode

    def _signal(self, sig: int) -> None:
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if sys.platform != "win32":
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
