"""``asgispy mcp`` as an agent meets it: the MCP SDK's own client spawns ``python -m asgispy mcp``
over stdio, against a session recorded from a real app under uvicorn, and against a live app
streaming to the server's socket while a real request is made."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.sync.client import connect as ws_connect

import asgispy
from asgispy import Spy
from asgispy.agents.tools import list_connections
from asgispy.agents.watch import Watch
from asgispy.codec.sessionfile import session_document, write_session
from asgispy.store.store import Store
from tests.servers import CLEAN_LIFESPAN, UVICORN_H11, serve

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
SECRET = "Bearer s3cret-token"
COOKIE = "session=c00kie-value"
API_KEY = "k3y-value"
SHOUT = "/shout?api_key=REDACTED&lang=en"  # as an agent is shown it
BIG = 20_000
RECORDED = 8192  # Spy's max_body for the recording: /big is kept in part
TOOLS = {
    "list_connections",
    "get_connection",
    "wait_for_connections",
    "get_violations",
    "get_session_info",
    "get_curl",
    "get_interception",
    "list_held",
}
#: the tools that change traffic (not read-only: an agent's host may ask its user first)
CHANGING = {"set_breakpoints", "resume_held", "answer_held", "drop_held", "set_rule", "resend"}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A JSON API, a big body, an echo behind secrets, a crash, an uppercase header, a WebSocket."""
    if scope["type"] == "lifespan":
        while True:
            kind = (await receive())["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] != "websocket.disconnect":
            await send({"type": "websocket.send", "text": message["text"].upper()})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("boom: the kettle is empty")
    headers = [(b"content-type", b"application/json")]
    if path == "/items":
        answer = b'{"items": [{"id": 1, "name": "kettle"}], "count": 1}'
    elif path == "/big":
        headers, answer = [(b"content-type", b"text/plain")], b"x" * BIG
    elif path == "/echo":
        headers.append((b"set-cookie", b"session=new-c00kie"))
        answer = body
    else:  # /shout: a header name in capitals breaks a rule of the ASGI spec
        headers.append((b"X-Shout", b"1"))
        answer = b"{}"
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session recorded at the real boundary, secrets kept (``redact=[]``): the server must mask them."""
    spy = Spy(app, address=False, redact=[], max_body=RECORDED)
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=10) as client:
        assert client.get(server.url("/items?page=2")).status_code == 200
        assert len(client.get(server.url("/big")).content) == BIG
        echoed = client.post(
            server.url("/echo"), json={"name": "ada"}, headers={"authorization": SECRET, "cookie": COOKIE}
        )
        assert echoed.json() == {"name": "ada"}
        assert client.get(server.url("/boom")).status_code == 500
        assert client.get(server.url(f"/shout?api_key={API_KEY}&lang=en")).status_code == 200
        with ws_connect(server.ws_url("/ws"), open_timeout=10) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "HI"
    return spy.export(tmp_path_factory.mktemp("mcp") / "session.json")


class Agent:
    """An MCP client session on ``python -m asgispy mcp ...``, calling tools as an agent does."""

    def __init__(self, session: ClientSession) -> None:
        self.session = session

    async def call(self, name: str, **arguments: Any) -> Any:
        result = await self.session.call_tool(name, arguments)
        assert not result.is_error, result.content
        text = result.content[0].text  # type: ignore[union-attr]
        data = json.loads(text)
        assert result.structured_content == data
        return data

    async def error(self, name: str, **arguments: Any) -> str:
        result = await self.session.call_tool(name, arguments)
        assert result.is_error, result.content
        return str(result.content[0].text)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def agent(*args: str, stderr: Path, cwd: Path = ROOT) -> AsyncIterator[Agent]:
    """The server as an agent runs it; anything on stdout that is not the protocol fails the test."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "asgispy", "mcp", *args],
        env={"PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(stderr.parent / "no-user-config")},
        cwd=str(cwd),
    )
    stray: list[Exception] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):
            stray.append(message)

    with stderr.open("a") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write, read_timeout_seconds=30, message_handler=on_message) as session,
        ):
            await session.initialize()
            yield Agent(session)
    assert not stray, stray


def run(body: Any) -> None:
    anyio.run(body)


def by_path(listing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("path", c["type"]): c for c in listing["connections"]}


# A saved session ---------------------------------------------------------------------------------


def test_tools_are_listed_with_their_parameters_described(recorded: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err") as a:
            tools = {t.name: t for t in (await a.session.list_tools()).tools}
            assert set(tools) == TOOLS | CHANGING
            for tool in tools.values():
                assert tool.description and len(tool.description) > 80
                assert tool.annotations is not None
                assert tool.annotations.read_only_hint is (tool.name not in CHANGING), tool.name
                for name, schema in tool.input_schema.get("properties", {}).items():
                    assert schema.get("description"), (tool.name, name)
            listing = tools["list_connections"].input_schema["properties"]
            assert "method:POST" in listing["filter"]["description"]
            assert listing["limit"]["maximum"] == 500
            assert tools["get_connection"].input_schema["required"] == ["id"]

    run(body)


def test_a_session_file_is_listed_filtered_and_opened(recorded: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err") as a:
            info = await a.call("get_session_info")
            assert info["source"]["kind"] == "file" and info["source"]["path"] == str(recorded)
            assert info["by_type"] == {"lifespan": 1, "http": 5, "websocket": 1}
            assert info["errors"] == 1 and info["violations"] == {"warning": 1}

            everything = by_path(await a.call("list_connections"))
            items = everything["/items?page=2"]
            assert items["method"] == "GET" and items["status"] == 200 and items["resp_bytes"] == 52
            assert "outcome" not in items and "violations" not in items
            assert everything["/boom"]["outcome"] == "raised RuntimeError: boom: the kettle is empty"
            assert everything[SHOUT]["violations"] == 1
            assert everything["/ws"]["frames_in"] == 1 and everything["/ws"]["close_code"] == 1000
            assert everything["/big"]["cut"] is True

            failed = await a.call("list_connections", filter="status:5xx or error")
            assert [c["path"] for c in failed["connections"]] == ["/boom"]
            newest = await a.call("list_connections", filter="-type:lifespan", limit=2)
            assert newest["matched"] == 6 and [c["path"] for c in newest["connections"]] == [SHOUT, "/ws"]
            assert "4 older" in newest["more"]

            detail = await a.call("get_connection", id=items["id"])
            assert detail["scope"]["query_string"] == "page=2" and detail["scope"]["method"] == "GET"
            start, answer = detail["events"][-2:]
            assert start["type"] == "http.response.start" and start["dir"] == "send"
            assert ["content-type", "application/json"] in start["headers"]
            assert answer["body_json"] == {"items": [{"id": 1, "name": "kettle"}], "count": 1}
            assert all(isinstance(e["t"], float) for e in detail["events"])

            crash = await a.call("get_connection", id=everything["/boom"]["id"])
            assert crash["error"]["type"] == "RuntimeError"
            assert 'raise RuntimeError("boom' in crash["error"]["traceback"]

            chat = await a.call("get_connection", id=everything["/ws"]["id"])
            assert [e.get("text") for e in chat["events"] if "text" in e] == ["hi", "HI"]

            violations = await a.call("get_violations")
            (broke,) = violations["connections"]
            assert broke["id"] == everything[SHOUT]["id"] and SHOUT in broke["line"]
            assert broke["violations"][0]["rule"] == "http.header-case"
            assert broke["violations"][0]["event"] == 1  # the response start, after the request
            assert "lowercased" in violations["rules"]["http.header-case"]
            assert (await a.call("get_violations", severity="error"))["connections"] == []

    run(body)


def test_an_agent_uses_the_projects_saved_filters_by_name(recorded: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "asgispy.toml").write_text('[filters]\nfailed = "status:5xx or error"\n')

    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err", cwd=project) as a:
            failed = await a.call("list_connections", filter="@failed")
            assert [c["path"] for c in failed["connections"]] == ["/boom"]
            narrowed = await a.call("list_connections", filter="@failed -path:/boom")
            assert narrowed["matched"] == 0
            unknown = await a.error("list_connections", filter="@nope")
            assert "nope" in unknown and "failed" in unknown

    run(body)


def test_bodies_are_cut_to_a_bound_that_says_so(recorded: Path, tmp_path: Path) -> None:
    big_id = next(c.id for c in asgispy.load(recorded).connections if c.path == "/big")

    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err") as a:
            default = (await a.call("get_connection", id=big_id))["events"][-1]
            assert default["body"] == "x" * 4096
            assert default["body_cut"] == {"shown": 4096, "size": BIG, "recorded": RECORDED}
            small = (await a.call("get_connection", id=big_id, max_body=10))["events"][-1]
            assert small["body"] == "x" * 10 and small["body_cut"]["shown"] == 10
            most = (await a.call("get_connection", id=big_id, max_body=100_000))["events"][-1]
            assert len(most["body"]) == RECORDED
            assert most["body_cut"] == {"shown": RECORDED, "size": BIG, "recorded": RECORDED}
            page = await a.call("get_connection", id=big_id, event_offset=1, max_events=1)
            assert [e["type"] for e in page["events"]] == ["http.response.start"]
            assert page["events_total"] == 3 and page["events_from"] == 1

    run(body)


def test_secret_headers_are_masked_even_when_the_recording_kept_them(recorded: Path, tmp_path: Path) -> None:
    raw = recorded.read_text()
    assert "s3cret-token" in raw and "c00kie-value" in raw and API_KEY in raw  # recorded with redact=[]
    echo_id = next(c.id for c in asgispy.load(recorded).connections if c.path == "/echo")

    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err") as a:
            detail = await a.call("get_connection", id=echo_id)
            request_headers = dict(detail["scope"]["headers"])
            assert request_headers["authorization"] == "[redacted]"
            assert request_headers["cookie"] == "[redacted]"
            response_headers = dict(detail["events"][-2]["headers"])
            assert response_headers["set-cookie"] == "[redacted]"
            assert detail["events"][0]["body_json"] == {"name": "ada"}
            curl = (await a.call("get_curl", id=echo_id, base_url="http://127.0.0.1:9"))["curl"]
            assert curl.startswith("# authorization was redacted") and "http://127.0.0.1:9/echo" in curl
            for text in (json.dumps(detail), curl):
                assert "s3cret" not in text and "c00kie" not in text

            # A secret-looking query parameter is masked wherever the request is shown.
            listed = by_path(await a.call("list_connections"))
            shout = await a.call("get_connection", id=listed[SHOUT]["id"])
            assert shout["path"] == SHOUT and shout["scope"]["query_string"] == "api_key=REDACTED&lang=en"
            line = (await a.call("get_violations"))["connections"][0]["line"]
            replay = (await a.call("get_curl", id=listed[SHOUT]["id"], base_url="http://127.0.0.1:9"))["curl"]
            assert SHOUT in line and f"http://127.0.0.1:9{SHOUT}" in replay
            for text in (json.dumps(listed), json.dumps(shout), line, replay):
                assert API_KEY not in text

    run(body)


def test_mistakes_come_back_as_tool_errors_and_the_server_carries_on(recorded: Path, tmp_path: Path) -> None:
    async def body() -> None:
        async with agent("--session", str(recorded), stderr=tmp_path / "err") as a:
            bad = await a.error("list_connections", filter="stat:404")
            assert "unknown field 'stat'" in bad and "method:POST" in bad
            assert "status:abc" in await a.error("wait_for_connections", filter="status:abc", timeout=0)
            assert "or" in await a.error("get_violations", filter="error or")
            missing = await a.error("get_connection", id="nope-1")
            assert "no connection 'nope-1'" in missing and "list_connections" in missing
            ws_id = (await a.call("list_connections", filter="type:websocket"))["connections"][0]["id"]
            assert "HTTP requests only" in await a.error("get_curl", id=ws_id)
            assert "base_url" in await a.error("get_curl", id="x", base_url="ftp://x")
            # Arguments outside the schema are refused by the SDK, with the reason.
            assert "limit" in await a.error("list_connections", limit=0)

            waited = await a.call("wait_for_connections", timeout=0.2)
            assert waited["timed_out"] is True and waited["connections"] == []
            assert "written again" in waited["hint"]
            assert (await a.call("get_session_info"))["connections"] == 7
        assert "Traceback" not in (tmp_path / "err").read_text()

    run(body)


def test_a_session_file_that_changes_is_read_again_and_waited_on(recorded: Path, tmp_path: Path) -> None:
    """As a test run writes its session file again: missing at first, then written, then rewritten."""
    session = asgispy.load(recorded)
    path = tmp_path / "growing.json"

    async def body() -> None:
        async with agent("--session", str(path), stderr=tmp_path / "err") as a:
            info = await a.call("get_session_info")
            assert "cannot read" in info["source"]["problem"] and info["connections"] == 0
            write_session(path, session.document(session.connections[:3]))
            first = await a.call("list_connections")
            assert first["matched"] == 3
            cursor = first["cursor"]
            producers = {t: p.document() for t, p in session.producers.items()}
            write_session(path, session_document([c.document() for c in session.connections], producers))
            arrived = await a.call("wait_for_connections", filter="type:websocket", timeout=20)
            assert [c["path"] for c in arrived["connections"]] == ["/ws"] and "timed_out" not in arrived
            newer = await a.call("list_connections", since=cursor)
            assert newer["matched"] == 4  # the three read before are not news
            assert (await a.call("wait_for_connections", timeout=0.2))["timed_out"] is True

    run(body)


def test_connections_sent_again_are_not_news_but_a_new_ending_is(recorded: Path) -> None:
    """A producer that reconnects sends its history again; the cursor must not call it new."""
    store = Store()
    watch = Watch()
    watch.follow(store)
    store.add_session(asgispy.load(recorded))
    cursor = watch.mark()
    assert len(watch.ended_after(store, 0)) == 7 and watch.ended_after(store, cursor) == []
    documents = [c.document() for c in store]
    for doc in documents:  # the same history, again
        store.open(doc)
    assert watch.tick == cursor and watch.ended_after(store, cursor) == []
    cut_short = dict(documents[1], outcome="cut off")
    store.open(cut_short)
    assert [c.id for c in watch.ended_after(store, cursor)] == [cut_short["id"]]
    found = list_connections(store, watch, "outcome:cut-off", since=cursor)
    assert [c["outcome"] for c in found["connections"]] == ["cut off"]


# Live ---------------------------------------------------------------------------------------------


def test_a_live_request_is_waited_for_and_shown(sockdir: Path, tmp_path: Path) -> None:
    address = f"unix:{sockdir}/mcp.sock"
    spy = Spy(app, address=address, redact=[])

    async def body() -> None:
        async with agent("--listen", address, stderr=tmp_path / "err") as a:
            info = await a.call("get_session_info")
            assert info["source"] == {"kind": "live", "listening": [address], "producers_connected": 0}
            assert f"ASGISPY_ADDRESS={address}" in info["hint"]

            with serve(spy, UVICORN_H11) as server:
                results: dict[str, Any] = {}

                async def wait() -> None:
                    results["wait"] = await a.call("wait_for_connections", filter="path:/echo", timeout=20)

                def request() -> httpx.Response:
                    headers = {"authorization": SECRET, "cookie": COOKIE}
                    return httpx.post(
                        server.url("/echo?live=1"), json={"live": True}, headers=headers, timeout=10
                    )

                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    response = await anyio.to_thread.run_sync(request)
                assert response.json() == {"live": True}
                (seen,) = results["wait"]["connections"]
                assert seen["method"] == "POST" and seen["path"] == "/echo?live=1" and seen["status"] == 200

                detail = await a.call("get_connection", id=seen["id"])
                assert dict(detail["scope"]["headers"])["authorization"] == "[redacted]"
                assert dict(detail["scope"]["headers"])["cookie"] == "[redacted]"
                assert detail["events"][0]["body_json"] == {"live": True}
                assert "s3cret" not in json.dumps(detail)

                # What was shown is not news: the next wait starts after it.
                again = await a.call("wait_for_connections", filter="path:/echo", timeout=0.3)
                assert again["timed_out"] is True and again["connections"] == []
                info = await a.call("get_session_info")
                assert info["producers"][0]["connected"] is True and info["by_type"]["http"] == 1

                # A second server on the same address says why it cannot listen, and keeps serving.
                async with agent("--listen", address, stderr=tmp_path / "err2") as b:
                    taken = await b.call("get_session_info")
                    assert "already listens" in taken["source"]["problem"]
                    assert "--jsonl FILE" in taken["source"]["problem"]
                    assert "`asgispy mcp --session FILE`" in taken["source"]["problem"]
                    assert taken["source"]["listening"] == []
                    assert "already listens" in (await b.call("wait_for_connections", timeout=0))["hint"]
        assert "listening on " + address in (tmp_path / "err").read_text()

    run(body)


def test_a_folder_of_sessions_is_one_source_read_again_as_files_come(recorded: Path, tmp_path: Path) -> None:
    from asgispy.agents.sources import FolderSource

    folder = tmp_path / "sessions"
    folder.mkdir()
    source = FolderSource(folder, Watch())
    source.refresh()
    assert len(source.store) == 0 and "no session file" in str(source.hint())
    (folder / "first.json").write_bytes(recorded.read_bytes())
    source.refresh()
    ids = [c.id for c in source.store]
    assert len(ids) == 7 and all(i.startswith("first:") for i in ids)
    (folder / "second.json").write_bytes(recorded.read_bytes())  # the very same ids inside
    (folder / "notes.json").write_text("{not a session")
    source.refresh()
    assert len(source.store) == 14 and source.files == 2
    assert "notes.json" in str(source.problem) and source.describe()["problem"] == source.problem
    assert {c.id.split(":")[0] for c in source.store} == {"first", "second"}
    (folder / "first.json").unlink()
    source.refresh()
    assert {c.id.split(":")[0] for c in source.store} == {"second"}


# Beside the dashboard ---------------------------------------------------------------------------


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_an_agent_follows_the_dashboards_event_log(sockdir: Path, tmp_path: Path) -> None:
    """One address has one listener, so the dashboard keeps it and writes ``--jsonl FILE``; the
    agent's server follows that file: the developer and the agent see the same requests live."""
    import argparse

    from asgispy.cli import dashboard

    parser = argparse.ArgumentParser()
    dashboard.add_parser(parser.add_subparsers(dest="command"), "attach", "attach")
    address = f"unix:{sockdir}/dash.sock"
    log = tmp_path / "traffic.jsonl"
    board = dashboard.attached_dashboard(
        parser.parse_args(["attach", "--listen", address, "--jsonl", str(log)]), refresh_interval=0.05
    )
    async with board.run_test(size=(120, 30)):
        with anyio.fail_after(20):
            while not board.status.flags.listening.startswith("unix:"):
                await anyio.sleep(0.05)
        with serve(Spy(app, address=address), UVICORN_H11) as server:
            async with agent("--session", str(log), stderr=tmp_path / "err") as a:
                results: dict[str, Any] = {}

                async def wait() -> None:
                    results["wait"] = await a.call("wait_for_connections", filter="path:/echo", timeout=20)

                def request() -> httpx.Response:
                    return httpx.post(server.url("/echo"), json={"seen": "by both"}, timeout=10)

                async with anyio.create_task_group() as group:
                    group.start_soon(wait)
                    response = await anyio.to_thread.run_sync(request)
                assert response.json() == {"seen": "by both"}
                (seen,) = results["wait"]["connections"]
                assert seen["method"] == "POST" and seen["status"] == 200
                detail = await a.call("get_connection", id=seen["id"])
                assert detail["events"][0]["body_json"] == {"seen": "by both"}
                # The very connection the dashboard shows.
                assert board.store.get(seen["id"]) is not None
    # The dashboard closed its log: an end line, and it loads as a session.
    assert log.read_bytes().rstrip().endswith(b"}") and b'"type":"end"' in log.read_bytes()
    session = asgispy.load(log)
    assert [c.path for c in session if c.type == "http"] == ["/echo"]
    lifespan = next(c for c in session if c.type == "lifespan")
    assert lifespan.outcome == "completed" and not lifespan.violations
    assert [e.type for e in lifespan.events] == CLEAN_LIFESPAN


# The command line ---------------------------------------------------------------------------------


def asgispy_cli(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "asgispy", *args]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        command, capture_output=True, text=True, timeout=30, env=env, cwd=ROOT, stdin=subprocess.DEVNULL
    )


def test_without_the_extra_the_command_says_what_to_install(recorded: Path) -> None:
    result = asgispy_cli(
        code=(
            "import sys; sys.modules['mcp'] = None\n"  # as if the extra were not installed
            "from asgispy.cli.main import main\n"
            f"sys.exit(main(['mcp', '--session', {str(recorded)!r}]))\n"
        )
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "pip install 'asgispy[mcp]'" in result.stderr


def test_usage_mistakes_exit_2_on_stderr(tmp_path: Path) -> None:
    both = asgispy_cli("mcp", "--session", "x.json", "--listen", "unix:/tmp/x.sock")
    assert both.returncode == 2 and both.stdout == "" and "--session" in both.stderr
    (tmp_path / "bad.json").write_text('{"not": "a session"}')
    bad = asgispy_cli("mcp", "--session", str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and bad.stdout == "" and "bad.json" in bad.stderr
    remote = asgispy_cli("mcp", "--listen", "tcp://0.0.0.0:0")
    assert remote.returncode == 2 and "--allow-remote" in remote.stderr


def test_import_asgispy_and_the_tools_never_import_the_sdk() -> None:
    result = asgispy_cli(
        code=(
            "import sys, asgispy, asgispy.agents.tools, asgispy.agents.sources\n"
            "from asgispy.cli.main import build_parser; build_parser()\n"
            "print('mcp' in sys.modules)\n"
        )
    )
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_an_agent_holds_edits_resumes_and_resends_a_live_request(sockdir: Path, tmp_path: Path) -> None:
    address = f"unix:{sockdir}/mcp.sock"
    spy = Spy(app, address=address, intercept=True)

    async def body() -> None:
        async with agent("--listen", address, stderr=tmp_path / "err") as a:
            assert "no connected app may be held" in await a.error("get_interception")
            with serve(spy, UVICORN_H11) as server:
                for _ in range(200):  # until the app has said hello
                    if not (await a.session.call_tool("get_interception", {})).is_error:
                        break
                    await anyio.sleep(0.05)
                state = await a.call("set_breakpoints", expressions=["path:/echo"])
                assert state["confirmed"] is True
                assert state["apps"][0]["breakpoints"][0]["expression"] == "path:/echo"

                def request() -> httpx.Response:
                    headers = {"authorization": SECRET}
                    return httpx.post(server.url("/echo"), content=b'{"n": 1}', headers=headers, timeout=20)

                results: dict[str, Any] = {}

                async def send() -> None:
                    results["answer"] = await anyio.to_thread.run_sync(request)

                async with anyio.create_task_group() as group:
                    group.start_soon(send)
                    held: list[dict[str, Any]] = []
                    for _ in range(200):
                        held = (await a.call("list_held"))["held"]
                        if held:
                            break
                        await anyio.sleep(0.05)
                    (one,) = held
                    assert "s3cret" not in json.dumps(one) and "authorization: [redacted]" in one["text"]
                    edited = one["text"].replace('{"n": 1}', '{"n": 2}')
                    resumed = await a.call("resume_held", id=one["id"], text=edited)
                    assert resumed["released"] is True
                assert results["answer"].json() == {"n": 2}
                assert (
                    await a.call("set_breakpoints", expressions=[])
                    and not (await a.call("list_held"))["held"]
                )
                sent = await a.call("resend", id=one["id"], text=edited.replace('"n": 2', '"n": 3'))
                assert sent["status"] == 200 and sent["resent_from"] == one["id"]
                seen = await a.call("wait_for_connections", filter="resent", timeout=10)
                assert [c["path"] for c in seen["connections"]] == ["/echo"]
                assert "not held" in await a.error("drop_held", id="nobody-1")

    run(body)
