"""The yardstick for Spy: a plain recording middleware, and a strict comparison against it.

``Recorder`` sits *inside* Spy (``Spy(Recorder(app))``), so it sees exactly what the app
sees. It deep-copies every container it is given and keeps everything else by reference,
so a comparison can check a loaded session against the very objects the app handled.

``assert_same`` is stricter than ``==``: bytes never equal str, tuples never equal lists,
``True`` never equals ``1``, and NaN equals NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from asgispy.codec.jsonform import Opaque
from asgispy.codec.redact import REDACTED, Redactor
from asgispy.model.connection import Connection

PAYLOAD_FIELDS = ("body", "bytes", "text")


def deep_copy(value: Any) -> Any:
    """Copy the containers ASGI uses; keep every other object (it is compared by type)."""
    kind = type(value)
    if kind is dict:
        return {k: deep_copy(v) for k, v in value.items()}
    if kind is list:
        return [deep_copy(v) for v in value]
    if kind is tuple:
        return tuple(deep_copy(v) for v in value)
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    return value


@dataclass
class Seen:
    """One call of the app as the recorder saw it."""

    scope: dict[str, Any]
    scope_object: Any
    events: list[tuple[str, Any]] = field(default_factory=list)
    exception: BaseException | None = None

    @property
    def type(self) -> str:
        return str(self.scope.get("type"))


class Recorder:
    """Plain recording ASGI middleware; ``calls`` holds one :class:`Seen` per connection."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: list[Seen] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        seen = Seen(deep_copy(scope), scope)
        self.calls.append(seen)

        async def recording_receive() -> Any:
            message = await receive()
            seen.events.append(("receive", deep_copy(message)))
            return message

        async def recording_send(message: Any) -> None:
            seen.events.append(("send", deep_copy(message)))
            await send(message)

        try:
            await self.app(scope, recording_receive, recording_send)
        except BaseException as exc:
            seen.exception = exc
            raise


_PLAIN = (bool, int, float, str, bytes)


def _plain_type(value: Any) -> type | None:
    # IntEnum statuses and other subclasses of the plain types are recorded as their base type.
    for kind in _PLAIN:
        if isinstance(value, kind):
            return kind
    if isinstance(value, (bytearray, memoryview)):
        return bytes
    return None


def assert_same(loaded: Any, seen: Any, where: str = "$") -> None:
    """Fail unless ``loaded`` (from a session file) is exactly ``seen`` (what the app had)."""
    if isinstance(loaded, Opaque):
        assert _plain_type(seen) is None and type(seen) not in (dict, list, tuple), (
            f"{where}: opaque {loaded}"
        )
        kind = type(seen)
        assert loaded.type == f"{kind.__module__}.{kind.__qualname__}", f"{where}: {loaded.type} vs {kind}"
        return
    if type(seen) is dict:
        assert type(loaded) is dict, f"{where}: {type(loaded).__name__} is not a dict"
        assert list(loaded) == list(seen), f"{where}: keys {list(loaded)} != {list(seen)}"
        for key, value in seen.items():
            assert_same(loaded[key], value, f"{where}.{key}")
        return
    if type(seen) in (list, tuple):
        assert type(loaded) is type(seen), f"{where}: {type(loaded).__name__} is not {type(seen).__name__}"
        assert len(loaded) == len(seen), f"{where}: length {len(loaded)} != {len(seen)}"
        for i, (a, b) in enumerate(zip(loaded, seen, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
        return
    if seen is None:
        assert loaded is None, f"{where}: {loaded!r} is not None"
        return
    plain = _plain_type(seen)
    assert plain is not None, f"{where}: {seen!r} should have come back opaque"
    assert type(loaded) is plain, f"{where}: {type(loaded).__name__} {loaded!r:.80} is not {plain.__name__}"
    if isinstance(seen, float) and math.isnan(seen):
        assert math.isnan(loaded), f"{where}: {loaded!r} is not nan"
        return
    assert loaded == plain(seen), f"{where}: {loaded!r:.200} != {seen!r:.200}"


def expected(
    message: Any, redactor: Redactor, max_body: int | None = None
) -> tuple[Any, dict[str, int] | None]:
    """What a recorded message should load as: secrets masked, payloads cut to ``max_body``."""
    if type(message) is not dict:
        return message, None
    out = dict(message)
    headers = out.get("headers")
    if isinstance(headers, (list, tuple)):
        masked = [_masked(item, redactor) for item in headers]
        out["headers"] = masked if type(headers) is list else tuple(masked)
    cut = None
    if max_body is not None:
        for name in PAYLOAD_FIELDS:
            value = out.get(name)
            if isinstance(value, (bytes, str)) and len(value) > max_body:
                out[name] = value[:max_body]
                cut = {**(cut or {}), name: len(value)}
    return out, cut


def _masked(item: Any, redactor: Redactor) -> Any:
    name = item[0]
    raw = name.encode() if isinstance(name, str) else name
    if isinstance(raw, bytes) and redactor.is_secret(raw):
        return type(item)((name, REDACTED))
    return item


def assert_connection_matches(
    conn: Connection, seen: Seen, redactor: Redactor, max_body: int | None = None
) -> None:
    """``conn`` (loaded) holds, message by message, what the recorder saw of that connection."""
    assert conn.type == seen.type
    scope, _ = expected(seen.scope, redactor)
    assert_same(conn.scope, scope, f"{conn.id}.scope")
    kinds = [(e.direction, e.type) for e in conn.events]
    seen_kinds = [(d, m.get("type") if isinstance(m, dict) else "?") for d, m in seen.events]
    assert kinds == seen_kinds, f"{conn.id}: events differ:\n{kinds}\n{seen_kinds}"
    last = 0.0
    for i, (event, (direction, message)) in enumerate(zip(conn.events, seen.events, strict=True)):
        want, cut = expected(message, redactor, max_body)
        assert event.direction == direction
        assert_same(event.message, want, f"{conn.id}.events[{i}]")
        assert event.cut == cut, f"{conn.id}.events[{i}]: cut {event.cut} != {cut}"
        assert event.t >= last, f"{conn.id}.events[{i}]: time went backwards"
        last = event.t
    if conn.duration is not None:
        assert conn.duration >= last
    if seen.exception is not None and conn.outcome != "open":
        assert conn.outcome in ("exception", "cancelled"), f"{conn.id}: outcome {conn.outcome}"


# A Spy around a Recorder, and the checks every capture test ends with ---------------------

_SCHEMA_VALIDATOR: Any = None


def session_schema_validator() -> Any:
    """The JSON Schema that ships in the package, as a validator (built once)."""
    global _SCHEMA_VALIDATOR
    if _SCHEMA_VALIDATOR is None:
        import json
        from importlib import resources

        import jsonschema

        text = resources.files("asgispy.codec").joinpath("session.schema.json").read_text("utf-8")
        schema = json.loads(text)
        jsonschema.Draft202012Validator.check_schema(schema)
        _SCHEMA_VALIDATOR = jsonschema.Draft202012Validator(schema)
    return _SCHEMA_VALIDATOR


class Harness:
    """``Spy(Recorder(app))`` plus the end-of-test checks: export, schema, secrets, load, compare."""

    def __init__(self, app: Any, path: Any, **spy_options: Any) -> None:
        from asgispy import Spy

        self.recorder = Recorder(app)
        self.spy = Spy(self.recorder, **spy_options)
        self.path = path
        self.raw = b""

    @property
    def calls(self) -> list[Seen]:
        return self.recorder.calls

    def settle(self, timeout: float = 5.0) -> None:
        """Wait until every connection but the lifespan has ended (the server runs in a thread)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.spy.records
            if all(r.outcome != "open" for r in records if r.type != "lifespan"):
                return
            time.sleep(0.002)
        still = [r.id for r in self.spy.records if r.outcome == "open"]
        raise AssertionError(f"connections still open after {timeout} s: {still}")

    def export(self, secrets: tuple[bytes, ...] = ()) -> Any:
        """Export, validate against the shipped schema, check no secret leaked, load it back."""
        import asgispy

        self.settle()
        self.spy.export(self.path)
        self.raw = self.path.read_bytes()
        import orjson

        session_schema_validator().validate(orjson.loads(self.raw))
        assert_no_secrets(self.raw, secrets)
        return asgispy.load(self.path)

    def check(self, secrets: tuple[bytes, ...] = (), max_body: int | None = None) -> Any:
        """Export and load, then compare each connection with what the recorder saw."""
        session = self.export(secrets)
        assert len(session.connections) == len(self.calls), (
            f"{len(session.connections)} recorded, {len(self.calls)} seen: {session.connections}"
        )
        limit = self.spy.max_body if max_body is None else max_body
        for conn, seen in zip(session.connections, self.calls, strict=True):
            assert_connection_matches(conn, seen, self.spy.redactor, limit)
        return session


def assert_no_secrets(raw: bytes, secrets: tuple[bytes, ...]) -> None:
    """None of ``secrets`` appears in ``raw``, as it is or in any of the codec's text forms."""
    import base64

    for secret in secrets:
        forms = {secret, secret.decode("latin-1").encode("utf-8"), base64.b64encode(secret)}
        for form in forms:
            assert form not in raw, f"secret {secret!r} found in the export as {form!r}"
