"""asgispy's pytest plugin: the traffic of each test, shown when it fails.

Registered through the ``pytest11`` entry point and off unless asked: ``pytest --asgispy``
records every app a test drives through Starlette's ``TestClient`` or httpx's
``ASGITransport``; the ``asgispy`` fixture does the same for the tests that use it, and gives
them their own traffic (``asgispy.connections``). When a test fails, its report gains an
"asgispy" section (one line per connection, the protocol rules broken, the failing response's
body) and a session file that ``asgispy open`` shows; ``--asgispy-all`` keeps the sessions of
passing tests too. Whatever goes wrong in here is reported, never turned into a test result.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["Recorder"]

_KEY = pytest.StashKey["Recorder"]()
_BODY_SHOWN = 2000


class Recorder:
    """The apps one test drove, each wrapped in a Spy of its own, and what they recorded."""

    def __init__(self) -> None:
        self.spies: list[Any] = []
        self._undo: list[tuple[Any, str, Any]] = []

    def start(self) -> None:
        """Wrap every app handed to a TestClient or an ASGITransport from now on in a Spy."""
        import httpx

        recorder = self

        def wrapping(cls: Any, attribute: str) -> None:
            original = getattr(cls, attribute)

            def __init__(self: Any, app: Any, *args: Any, **kwargs: Any) -> None:
                original(self, recorder.wrap(app), *args, **kwargs)

            setattr(cls, attribute, __init__)
            self._undo.append((cls, attribute, original))

        wrapping(httpx.ASGITransport, "__init__")
        try:
            from starlette.testclient import TestClient
        except ImportError:  # pragma: no cover - Starlette is a dependency of asgispy
            return
        wrapping(TestClient, "__init__")

    def stop(self) -> None:
        for cls, attribute, original in reversed(self._undo):
            setattr(cls, attribute, original)
        self._undo.clear()

    def wrap(self, app: Any) -> Any:
        from asgispy.spy import Spy

        if isinstance(app, Spy):
            if app not in self.spies:
                self.spies.append(app)
            return app
        spy = Spy(app, address=False, history=10_000)
        self.spies.append(spy)
        return spy

    @property
    def connections(self) -> list[Any]:
        """What the test's apps did, as the store's connections (the app's lifespans included)."""
        connections: list[Any] = self.session().connections
        return connections

    def session(self) -> Any:
        from asgispy.codec.sessionfile import session_document
        from asgispy.store.load import session_from_document

        docs = []
        producers = {}
        for spy in self.spies:
            origin = spy.origin
            producers[origin.tag] = origin.document()
            docs += [record.document(spy.redactor, origin.tag) for record in spy.records]
        docs.sort(key=lambda d: d.get("started") or 0)
        return session_from_document(session_document(docs, producers))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asgispy", "asgispy: the ASGI traffic of each test")
    group.addoption(
        "--asgispy", action="store_true", help="record the apps every test drives (TestClient, ASGITransport)"
    )
    group.addoption("--asgispy-all", action="store_true", help="keep the session of passing tests too")
    group.addoption(
        "--asgispy-dir", default=".asgispy", metavar="DIR", help="where session files go (default: .asgispy)"
    )


@pytest.fixture
def asgispy(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """This test's traffic: ``asgispy.connections`` once the app has been driven."""
    recorder = request.node.stash.get(_KEY, None)
    if recorder is None:
        recorder = Recorder()
        recorder.start()
        request.node.stash[_KEY] = recorder
    yield recorder


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    if item.config.getoption("asgispy", False) and _KEY not in item.stash:
        recorder = Recorder()
        recorder.start()
        item.stash[_KEY] = recorder
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome: Any = yield
    recorder = item.stash.get(_KEY, None)
    if recorder is None or call.when not in ("call", "teardown"):
        return
    report: pytest.TestReport = outcome.get_result()
    keep_all = item.config.getoption("asgispy_all", False)
    if call.when == "teardown":
        recorder.stop()
        return
    if not (report.failed or keep_all):
        return
    try:
        session = recorder.session()
        lines = _summary(session.connections) if report.failed else []
        path = None
        if session.connections:
            path = _write(session, Path(item.config.getoption("asgispy_dir")), item.nodeid)
            lines.append(f"session: {path}  (asgispy open {path})")
        if lines:
            report.sections.append(("asgispy", "\n".join(lines)))
    except Exception as exc:  # the plugin must never change a test's outcome
        report.sections.append(("asgispy", f"could not report the traffic: {exc!r}"))


def _summary(connections: list[Any]) -> list[str]:
    from asgispy.exports.line import summary_line

    lines = []
    failing = None
    for conn in connections:
        if conn.type == "lifespan":
            continue
        line = summary_line(conn)
        if conn.violations:
            line += "  " + ", ".join(f"{v.severity} {v.rule}" for v in conn.violations)
        lines.append(line)
        if conn.outcome == "exception" or (conn.status or 0) >= 400:
            failing = conn
    if failing is not None and failing.type == "http":
        body = failing.response_body()
        text = body[:_BODY_SHOWN].decode("utf-8", "replace")
        lines.append(f"response body of {failing.method} {failing.target} ({len(body)} bytes):")
        lines += ["  " + line for line in text.splitlines()] + (["  …"] if len(body) > _BODY_SHOWN else [])
    return lines


def _write(session: Any, folder: Path, nodeid: str) -> Path:
    from asgispy.codec.sessionfile import write_session

    name = re.sub(r"[^0-9A-Za-z_.-]+", "_", nodeid).strip("_")[:150] or "test"
    folder.mkdir(parents=True, exist_ok=True)
    return write_session(folder / f"{name}.json", session.document())
