"""A session: connections recorded by one or more producers (processes), as a file holds them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgispy.codec.sessionfile import session_document
from asgispy.model.connection import Connection

__all__ = ["ProducerInfo", "Session"]


@dataclass(frozen=True)
class ProducerInfo:
    """A process that recorded connections: host, pid and app name."""

    tag: str
    host: str = ""
    pid: int = 0
    app: str = ""
    started: float = 0.0

    @classmethod
    def from_document(cls, tag: str, doc: Mapping[str, Any]) -> ProducerInfo:
        return cls(
            tag,
            str(doc.get("host", "")),
            int(doc.get("pid", 0) or 0),
            str(doc.get("app", "")),
            float(doc.get("started", 0.0) or 0.0),
        )

    def document(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "app": self.app, "started": self.started}


@dataclass
class Session:
    """Connections recorded by one or more producers, as loaded from a session file."""

    connections: list[Connection] = field(default_factory=list)
    producers: dict[str, ProducerInfo] = field(default_factory=dict)
    dropped: int = 0
    created: float = 0.0

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Session:
        producers = {
            str(tag): ProducerInfo.from_document(str(tag), info)
            for tag, info in (doc.get("producers") or {}).items()
        }
        connections = [Connection.from_document(c) for c in doc.get("connections", ())]
        return cls(connections, producers, int(doc.get("dropped", 0) or 0), float(doc.get("created", 0) or 0))

    def __iter__(self) -> Iterator[Connection]:
        return iter(self.connections)

    def __len__(self) -> int:
        return len(self.connections)

    def __getitem__(self, id: str) -> Connection:
        for conn in self.connections:
            if conn.id == id:
                return conn
        raise KeyError(id)

    def document(self, connections: Iterable[Connection] | None = None) -> dict[str, Any]:
        """This session (or the given subset of its connections) as a session document."""
        chosen = list(self.connections if connections is None else connections)
        tags = {c.producer for c in chosen}
        producers = {t: p.document() for t, p in self.producers.items() if t in tags}
        return session_document([c.document() for c in chosen], producers, self.dropped)
