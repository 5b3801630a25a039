"""What one middleware layer did to a connection, as data: the changes and their two forms.

:func:`asgispy.analysis.layerdiff.layer_changes` works a :class:`Changes` out from the two sides
of a layer; the dashboard, the filter and the agents' tools read it as words (``words()``),
and a session file keeps it as a document (``document()``, read back by ``from_document()``,
which skips what does not read rather than raising). The data classes are apart from the
computation because they are what the rest of asgispy holds and shows, and a saved document
becomes them again without any diff being run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from asgispy.analysis.reading import finite_float, nonempty_str, plain_int, rows, str_rows
from asgispy.analysis.summaries import clip, format_duration, format_size, plural

__all__ = [
    "BodyChange",
    "Changes",
    "ExceptionChange",
    "FrameChange",
    "HeaderChanges",
    "Hold",
    "ScopeChange",
]


@dataclass(frozen=True, slots=True)
class HeaderChanges:
    """Headers the layer set, dropped or replaced; names lower-case, all text latin-1.

    Pairs rather than a mapping, because a header may repeat (``set-cookie``): a name whose
    single value was replaced is in ``changed``, extra or missing values of a repeated
    header are in ``added`` and ``removed``.
    """

    added: tuple[tuple[str, str], ...] = ()  # (name, value)
    removed: tuple[tuple[str, str], ...] = ()  # (name, value)
    changed: tuple[tuple[str, str, str], ...] = ()  # (name, before, after)

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def words(self, prefix: str = "") -> list[str]:
        """``+ name: value``, ``- name: value``, ``~ name: before → after``."""
        lines = [f"{prefix}+ {name}: {clip(value)}" for name, value in self.added]
        lines += [f"{prefix}- {name}: {clip(value)}" for name, value in self.removed]
        lines += [f"{prefix}~ {name}: {clip(a)} → {clip(b)}" for name, a, b in self.changed]
        return lines

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        if self.added:
            doc["added"] = [list(p) for p in self.added]
        if self.removed:
            doc["removed"] = [list(p) for p in self.removed]
        if self.changed:
            doc["changed"] = [list(p) for p in self.changed]
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> HeaderChanges:
        if not isinstance(doc, Mapping):
            return cls()
        return cls(
            tuple((a, b) for a, b in str_rows(doc.get("added"), 2)),
            tuple((a, b) for a, b in str_rows(doc.get("removed"), 2)),
            tuple((a, b, c) for a, b, c in str_rows(doc.get("changed"), 3)),
        )


@dataclass(frozen=True, slots=True)
class ScopeChange:
    """A scope key the layer set, replaced or removed, its values as short summaries."""

    key: str
    before: str | None  # None: the layer added the key
    after: str | None  # None: the layer removed the key

    def words(self) -> str:
        if self.before is None:
            return f"scope + {self.key}: {self.after}"
        if self.after is None:
            return f"scope - {self.key}: {self.before}"
        return f"scope ~ {self.key}: {self.before} → {self.after}"


@dataclass(frozen=True, slots=True)
class BodyChange:
    """A body the layer rewrote or re-chunked, before and after it (in flow order: request
    outer → inner, response inner → outer).

    Chunks are the body messages that carried bytes: the empty closing message many apps and
    layers add is not counted, so re-streaming the same bytes is not taken for a split.
    """

    before: int  # bytes
    after: int
    chunks_before: int
    chunks_after: int
    rewritten: bool  # the bytes differ
    encoding: str | None = None  # the content-encoding the layer put on the response (gzip)

    def words(self, which: str) -> str:
        if self.rewritten:
            text = f"{which} body rewritten: {format_size(self.before)} → {format_size(self.after)}"
            if self.encoding:
                text += f" ({self.encoding})"
            if self.chunks_before != self.chunks_after:
                text += f", {plural(self.chunks_before, 'message')} → {self.chunks_after}"
            return text
        what = "message" if which == "response" else "request message"
        if self.chunks_before < self.chunks_after:
            return f"split {plural(self.chunks_before, what)} into {self.chunks_after}"
        return f"merged {plural(self.chunks_before, what)} into {self.chunks_after}"


@dataclass(frozen=True, slots=True)
class Hold:
    """Response bytes the layer kept before passing them on: the longest wait of any byte.

    ``chunks`` is how many inner body messages the outer message that ended that wait
    carried, together; the counts compare body messages with bytes on both sides.
    """

    seconds: float
    chunks: int
    chunks_before: int  # inner body messages with bytes
    chunks_after: int  # outer body messages with bytes

    def words(self) -> str:
        if self.chunks > 1:
            return f"held {self.chunks} chunks for {format_duration(self.seconds)}, released together"
        return f"held 1 chunk for {format_duration(self.seconds)}"


@dataclass(frozen=True, slots=True)
class ExceptionChange:
    """An exception on either side of the layer and what the layer made of it."""

    inner: str | None  # what the inner side raised; None: the layer raised on its own
    outer: str | None  # what the layer's own call raised (equal to inner: passed through)
    status: int | None  # the response the layer sent instead (the inner side had not started one)

    @property
    def fate(self) -> Literal["handled", "swallowed", "propagated", "replaced", "raised"]:
        """``handled``: turned into a response; ``propagated``: raised on unchanged."""
        if self.inner is None:
            return "raised"
        if self.outer is None:
            return "handled" if self.status is not None else "swallowed"
        return "propagated" if self.outer == self.inner else "replaced"

    @property
    def changed(self) -> bool:
        """An exception that only passed through is not the layer's doing."""
        return self.fate != "propagated" or self.status is not None

    def words(self) -> str:
        sent = f" → {self.status}" if self.status is not None else ""
        fate = self.fate
        if fate == "raised":
            return f"raised {self.outer}"
        if fate == "handled":
            return f"{self.inner}{sent}"
        if fate == "swallowed":
            return f"{self.inner} swallowed"
        if fate == "propagated":
            return f"{self.inner}{sent}, propagated"
        return f"{self.inner}{sent} → raised {self.outer}"


@dataclass(frozen=True, slots=True)
class FrameChange:
    """WebSocket frames of one direction the layer dropped, added or rewrote."""

    direction: str  # "receive" (client → app, outer → inner) or "send" (inner → outer)
    before: int
    after: int
    rewritten: int  # frames at the same position whose payload differs

    def words(self) -> list[str]:
        kind = "received" if self.direction == "receive" else "sent"
        lines = []
        if self.rewritten:
            lines.append(f"rewrote {plural(self.rewritten, kind + ' frame')}")
        if self.after < self.before:
            lines.append(f"dropped {self.before - self.after} of {plural(self.before, kind + ' frame')}")
        elif self.after > self.before:
            lines.append(f"added {plural(self.after - self.before, kind + ' frame')}")
        return lines


@dataclass(frozen=True, slots=True)
class Changes:
    """What one layer did to one connection; empty fields mean "nothing of that kind".

    ``words()`` is non-empty exactly when ``changed``; the time spent inside the layer is
    data only, since every layer takes some.
    """

    request_headers: HeaderChanges = HeaderChanges()
    scope: tuple[ScopeChange, ...] = ()
    request_body: BodyChange | None = None
    #: False: the layer answered (or gave up) without calling inward; None: not known (innermost)
    called_inward: bool | None = None
    #: status of a response the layer sent although the inner side sent none and raised nothing
    answered: int | None = None
    exception: ExceptionChange | None = None
    status: tuple[int, int] | None = None  # (inner, outer) when they differ
    response_headers: HeaderChanges = HeaderChanges()
    response_body: BodyChange | None = None
    hold: Hold | None = None
    frames: tuple[FrameChange, ...] = ()
    #: seconds spent in the layer itself, outside the inner call (None: not known)
    time_inside: float | None = None

    @property
    def changed(self) -> bool:
        """Whether the layer did anything besides taking time."""
        return bool(
            self.request_headers
            or self.scope
            or self.request_body
            or self.called_inward is False
            or self.answered is not None
            or (self.exception is not None and self.exception.changed)
            or self.status
            or self.response_headers
            or self.response_body
            or self.hold
            or self.frames
        )

    def words(self) -> list[str]:
        """Short lines, in the order the request and then the response crossed the layer."""
        lines = self.request_headers.words("request ")
        lines += [change.words() for change in self.scope]
        if self.request_body is not None:
            lines.append(self.request_body.words("request"))
        if self.called_inward is False:
            if self.answered is not None:
                lines.append(f"answered {self.answered} without calling inward")
            else:
                lines.append("did not call inward")
        elif self.answered is not None:
            lines.append(f"answered {self.answered} itself")
        if self.exception is not None and self.exception.changed:
            lines.append(self.exception.words())
        if self.status is not None:
            lines.append(f"status {self.status[0]} → {self.status[1]}")
        lines += self.response_headers.words()
        if self.response_body is not None:
            lines.append(self.response_body.words("response"))
        if self.hold is not None:
            lines.append(self.hold.words())
        for frames in self.frames:
            lines += frames.words()
        return lines

    def document(self) -> dict[str, Any]:
        """JSON-able form for a session file: only what is there, all text, no objects."""
        doc: dict[str, Any] = {}
        if self.request_headers:
            doc["request_headers"] = self.request_headers.document()
        if self.scope:
            doc["scope"] = [[c.key, c.before, c.after] for c in self.scope]
        if self.request_body is not None:
            doc["request_body"] = _body_document(self.request_body)
        if self.called_inward is not None:
            doc["called_inward"] = self.called_inward
        if self.answered is not None:
            doc["answered"] = self.answered
        if self.exception is not None:
            e = self.exception
            doc["exception"] = {"inner": e.inner, "outer": e.outer, "status": e.status}
        if self.status is not None:
            doc["status"] = list(self.status)
        if self.response_headers:
            doc["response_headers"] = self.response_headers.document()
        if self.response_body is not None:
            doc["response_body"] = _body_document(self.response_body)
        if self.hold is not None:
            h = self.hold
            doc["hold"] = {
                "seconds": h.seconds,
                "chunks": h.chunks,
                "chunks_before": h.chunks_before,
                "chunks_after": h.chunks_after,
            }
        if self.frames:
            doc["frames"] = [[f.direction, f.before, f.after, f.rewritten] for f in self.frames]
        if self.time_inside is not None:
            doc["time_inside"] = self.time_inside
        return doc

    @classmethod
    def from_document(cls, doc: Any) -> Changes:
        """The changes :meth:`document` wrote; parts that do not read are left out, not raised on."""
        if not isinstance(doc, Mapping):
            return cls()
        scope = [
            ScopeChange(row[0], row[1], row[2])
            for row in rows(doc.get("scope"), 3)
            if type(row[0]) is str and all(v is None or type(v) is str for v in row[1:])
        ]
        exception = None
        e = doc.get("exception")
        if isinstance(e, Mapping) and (nonempty_str(e.get("inner")) or nonempty_str(e.get("outer"))):
            exception = ExceptionChange(
                nonempty_str(e.get("inner")), nonempty_str(e.get("outer")), plain_int(e.get("status"))
            )
        status = doc.get("status")
        hold = None
        h = doc.get("hold")
        if isinstance(h, Mapping) and finite_float(h.get("seconds")) is not None:
            hold = Hold(
                finite_float(h.get("seconds")) or 0.0,
                plain_int(h.get("chunks")) or 0,
                plain_int(h.get("chunks_before")) or 0,
                plain_int(h.get("chunks_after")) or 0,
            )
        frames = []
        for row in rows(doc.get("frames"), 4):
            if type(row[0]) is str:
                counts = [plain_int(v) for v in row[1:]]
                if None not in counts:
                    frames.append(FrameChange(row[0], counts[0] or 0, counts[1] or 0, counts[2] or 0))
        called = doc.get("called_inward")
        return cls(
            request_headers=HeaderChanges.from_document(doc.get("request_headers")),
            scope=tuple(scope),
            request_body=_body_from_document(doc.get("request_body")),
            called_inward=called if type(called) is bool else None,
            answered=plain_int(doc.get("answered")),
            exception=exception,
            status=(
                (status[0], status[1])
                if isinstance(status, list)
                and len(status) == 2
                and all(plain_int(s) is not None for s in status)
                else None
            ),
            response_headers=HeaderChanges.from_document(doc.get("response_headers")),
            response_body=_body_from_document(doc.get("response_body")),
            hold=hold,
            frames=tuple(frames),
            time_inside=finite_float(doc.get("time_inside")),
        )


def _body_document(body: BodyChange) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "before": body.before,
        "after": body.after,
        "chunks_before": body.chunks_before,
        "chunks_after": body.chunks_after,
        "rewritten": body.rewritten,
    }
    if body.encoding is not None:
        doc["encoding"] = body.encoding
    return doc


def _body_from_document(doc: Any) -> BodyChange | None:
    if not isinstance(doc, Mapping):
        return None
    counts = [plain_int(doc.get(k)) for k in ("before", "after", "chunks_before", "chunks_after")]
    if None in counts:
        return None
    before, after, chunks_before, chunks_after = (c or 0 for c in counts)
    encoding = doc.get("encoding")
    return BodyChange(
        before,
        after,
        chunks_before,
        chunks_after,
        doc.get("rewritten") is True,
        encoding if isinstance(encoding, str) else None,
    )
