"""The control line: the way back from a viewer to an app that may be controlled.

Only a producer made with a control handler (``Spy(app, intercept=True)``) has one. It says so
in its hello; then, in the sender thread, each round reads what the collector sent (its
``control`` requests, handed to the handler; an ``error`` is the collector dropping us) and
writes what the app reports (``[CONTROL, report]`` frames). The app's event loop reports from
its own thread: the reports wait in a deque, and the thread is woken to send them.

When the line goes (the viewer quit, the socket broke), the handler is told ``gone``, so that
nothing stays held for a viewer that is not there.
"""

from __future__ import annotations

import logging
import socket
from collections import deque
from collections.abc import Callable
from typing import Any

from asgispy.wire.protocol import CONTROL, FrameReader, ProtocolError, decode_payload, encode_frame

__all__ = ["ControlLine"]

logger = logging.getLogger("asgispy")

Handler = Callable[[dict[str, Any]], None]
#: the most reports kept while no viewer reads them (the oldest go first)
MAX_REPORTS = 1000


class ControlLine:
    """Reads a viewer's requests and writes the app's reports, on the producer's socket."""

    def __init__(self, handler: Handler, wake: Callable[[], None]) -> None:
        self.handler = handler
        self._wake = wake
        self._reports: deque[dict[str, Any]] = deque(maxlen=MAX_REPORTS)
        self._reader = FrameReader(1024 * 1024)
        #: the reason the collector gave for dropping us, if it gave one
        self.refusal: str | None = None
        self.open = False

    def report(self, message: dict[str, Any]) -> None:
        """From any thread: send ``message`` to the viewer soon (dropped while none listens)."""
        if self.open:
            self._reports.append(message)
            self._wake()

    def opened(self) -> None:
        """A collector welcomed us: ask the app for its state, which goes up first."""
        self._reader = FrameReader(1024 * 1024)
        self.refusal = None
        self.open = True
        self._handle({"kind": "state"})

    def closed(self) -> None:
        """The line went: whatever the viewer held resumes; its breakpoints go."""
        if self.open:
            self.open = False
            self._reports.clear()
            self._handle({"kind": "gone"})

    def exchange(self, sock: socket.socket) -> None:
        """One round, in the sender thread: read requests, write reports (OSError if gone)."""
        while True:
            try:
                data = sock.recv(64 * 1024, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if not data:
                raise ConnectionResetError("the collector closed the connection")
            try:
                frames = [decode_payload(payload) for payload in self._reader.feed(data)]
            except ProtocolError as exc:
                raise ConnectionResetError(f"the collector sent {exc}") from None
            for frame in frames:
                if isinstance(frame, dict) and frame.get("type") == "error":
                    self.refusal = str(frame.get("message", "?"))
                    raise ConnectionResetError("the collector is dropping us")
                if isinstance(frame, dict) and frame.get("type") == "control":
                    request = frame.get("request")
                    if isinstance(request, dict):
                        self._handle(request)
        reports = self._reports
        if reports:
            data = b"".join(encode_frame([CONTROL, reports.popleft()]) for _ in range(len(reports)))
            sock.sendall(data)

    def _handle(self, request: dict[str, Any]) -> None:
        try:
            self.handler(request)
        except Exception:  # the app's side of control must never stop the sender
            logger.exception("asgispy: a viewer's request failed")
