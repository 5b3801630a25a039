"""One message of a connection, as every view reads it: kept packed, decoded when asked.

Events are built from the JSON documents of a session file or from the values the wire
brings; either way the message is held as one MessagePack buffer, since a store holding
50,000 connections would otherwise spend most of its memory on dicts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asgispy.codec import jsonform, pack
from asgispy.types import PAYLOAD_FIELDS, Direction

__all__ = ["Event", "encoded_size"]


def encoded_size(doc: Any) -> int:
    """The length of the bytes or str that ``doc`` encodes, without decoding it."""
    if type(doc) is str:
        return len(doc)
    if type(doc) is dict and len(doc) == 1:
        ((tag, text),) = doc.items()
        if type(text) is str:
            if tag == "$bytes":
                return len(text.encode("utf-8"))
            if tag == "$latin1":
                return len(text)
            if tag == "$base64":
                # From the text's length, without decoding a body that may be a megabyte.
                return len(text) // 4 * 3 - text[-2:].count("=")
    return 0


class Event:
    """One message the app received or sent, ``t`` seconds after its connection began.

    The message is kept packed (MessagePack, see :mod:`asgispy.codec.pack`), not as a tree of
    Python objects: a store holding 50,000 connections would otherwise spend most of its memory
    on dicts. What the list and the summaries need (type, payload size, status or close code)
    is read once, up front; the rest is decoded when a view asks.
    """

    __slots__ = (
        "_message",
        "_raw",
        "code",
        "cut",
        "direction",
        "payload_size",
        "status",
        "t",
        "type",
        "wait",
    )

    def __init__(
        self,
        direction: Direction,
        t: float,
        doc: Any,
        cut: dict[str, int] | None = None,
        wait: float | None = None,
    ) -> None:
        self._set(direction, t, jsonform.decode(doc), cut, None, wait)

    @classmethod
    def from_message(
        cls,
        direction: Direction,
        t: float,
        message: Any,
        cut: dict[str, int] | None,
        packed: bytes | None = None,
        wait: float | None = None,
    ) -> Event:
        """An event from the message itself (bytes as bytes), as the wire brings it; ``packed``
        is the message as the producer packed it, kept as it is when given."""
        event = cls.__new__(cls)
        event._set(direction, t, message, cut, packed, wait)
        return event

    def _set(
        self,
        direction: Direction,
        t: float,
        message: Any,
        cut: dict[str, int] | None,
        packed: bytes | None = None,
        wait: float | None = None,
    ) -> None:
        self.direction: Direction = direction
        self.t = t
        #: seconds the app spent inside the receive() or send() call of this message (None when
        #: not recorded): waiting for the client, or held by the server's backpressure
        self.wait = wait
        self.cut = cut or None
        self._message: Any = None
        if type(message) is dict:
            kind = message.get("type")
            status = message.get("status")
            code = message.get("code")
            self.type: str = kind if type(kind) is str else "?"
            self.status = status if type(status) is int else None
            self.code = code if type(code) is int else None
            size = 0
            for name in PAYLOAD_FIELDS:
                if name in message:
                    size += self._size(message, name)
            self.payload_size = size
        else:
            self.type, self.status, self.code, self.payload_size = "?", None, None, 0
        self._raw = packed if packed is not None else pack.dumps(message)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Event:
        return cls.decoded(doc)[0]

    @classmethod
    def decoded(cls, doc: Mapping[str, Any]) -> tuple[Event, Any]:
        """The event of a document, and its message as decoded for it (the checker reads it
        without decoding the message a second time)."""
        direction = doc.get("direction")
        if direction not in ("receive", "send"):
            raise ValueError(f"event direction must be 'receive' or 'send', not {direction!r}")
        wait = doc.get("wait")
        message = jsonform.decode(doc.get("message"))
        event = cls.from_message(
            direction,
            float(doc.get("t", 0.0)),
            message,
            doc.get("cut"),
            None,
            float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) else None,
        )
        return event, message

    @property
    def doc(self) -> Any:
        """The message in its encoded (JSON) form, made readable by the codec."""
        return jsonform.encode(self.message)

    @property
    def fields(self) -> dict[str, Any]:
        """The message's top-level fields, in their encoded (JSON) form."""
        return _fields(self.doc)

    @property
    def message(self) -> Any:
        """The message as the app saw it (bytes as bytes), decoded on first use."""
        if self._message is None:
            self._message = pack.decode(self._raw)
        return self._message

    def field_size(self, name: str) -> int:
        """The true length of a payload field, counting what was cut."""
        message = self.message
        return self._size(message if type(message) is dict else {}, name)

    def _size(self, fields: dict[str, Any], name: str) -> int:
        cut = self.cut
        if cut and name in cut:
            return int(cut[name])
        value = fields.get(name)
        return len(value) if type(value) is bytes or type(value) is str else 0

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"direction": self.direction, "t": self.t, "message": self.doc}
        if self.cut:
            doc["cut"] = self.cut
        if self.wait is not None:
            doc["wait"] = self.wait
        return doc

    def peek(self) -> Any:
        """The message, decoded without keeping the decoded form (for one look at it)."""
        message = self._message
        return message if message is not None else pack.decode(self._raw)

    def __repr__(self) -> str:
        return f"<Event {self.direction} {self.type} t={self.t:.6f}>"


def _fields(doc: Any) -> dict[str, Any]:
    """The top-level fields of an encoded message, still encoded, whatever form it was stored in."""
    if type(doc) is not dict:
        return {}
    if len(doc) == 1 and type(doc.get("$dict")) is list:
        # A message with a key JSON objects cannot hold is stored as [key, value] pairs.
        return {p[0]: p[1] for p in doc["$dict"] if type(p) is list and len(p) == 2 and type(p[0]) is str}
    return doc
