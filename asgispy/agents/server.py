"""The MCP server: the tools of :mod:`asgispy.agents.tools`, served over stdio with the official SDK.

This is the only module of asgispy that imports ``mcp`` (the ``asgispy[mcp]`` extra, 2.x: its
``MCPServer``). Every tool is async, so it runs on the event loop that also runs the
collector: the store is only ever touched from one thread. Results are compact JSON text
(with the same data as structured content); a mistake the agent can correct comes back as
a tool error with the reason, never as a crash.

Annotations here are evaluated (no ``from __future__ import annotations``): the SDK reads
the parameters' types and descriptions to build the JSON schemas agents see.
"""

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as SDKToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from asgispy.agents.errors import ToolError
from asgispy.agents.server_intercept import add_intercept_tools
from asgispy.agents.tools import DEFAULT_MAX_BODY, Inspector
from asgispy.filter.grammar import language
from asgispy.version import __version__

__all__ = ["INSTRUCTIONS", "build_server", "serve_stdio"]

INSTRUCTIONS = """\
asgispy records what an ASGI app (FastAPI, Starlette, Django, raw ASGI) received and sent: each \
connection's scope and every receive/send message, with timing, the exception if the app raised, \
and breaches of the ASGI spec. Use it to see what a request really did inside the app's server.
To check a change: make the request (curl, a test, a browser action), then call \
wait_for_connections with a filter for it, then get_connection(id) for headers, bodies and messages.
list_connections and get_violations look over everything recorded; get_session_info says where \
the traffic comes from and why nothing arrives. Secret header values are masked.
With asgispy mcp --listen and an app served by asgispy run (or Spy(app, intercept=True)), you can \
also hold connections at breakpoints (set_breakpoints, list_held, resume_held with edits, \
answer_held, drop_held), turn the app's rules on and off, and resend a request edited, to \
reproduce an edge case without writing a client."""

FILTER = "asgispy filter: " + language()
SAME_FILTER = (
    "The list_connections filter language, e.g. 'method:POST path:/api/items' or 'status:5xx or error'."
)
SINCE = (
    "A cursor: only connections that began or ended after it. Every list_connections, "
    "wait_for_connections and get_session_info result carries the current 'cursor'."
)
SUMMARY_KEYS = (
    "id, type, at (local time), method, path (with query), status, duration_ms, req_bytes/resp_bytes, "
    "route, outcome (only when not a plain completion: 'raised ValueError: boom', 'open', 'cut off', "
    "'cancelled'), violations (how many ASGI rules it broke), cut (a body or messages not kept whole); "
    "WebSockets: frames_in/frames_out, close_code; lifespan: steps. Keys with nothing to say are left out."
)
ID = "A connection id from list_connections or wait_for_connections, like '7af777-2'."

_READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _answer(call: Callable[[], dict[str, Any]]) -> CallToolResult:
    try:
        data = call()
    except ToolError as exc:
        raise SDKToolError(str(exc)) from None
    return _result(data)


def _result(data: dict[str, Any]) -> CallToolResult:
    text = orjson.dumps(data, default=str).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def build_server(inspector: Inspector) -> MCPServer[Any]:
    """An MCP server whose tools read ``inspector``'s source."""
    server: MCPServer[Any] = MCPServer("asgispy", instructions=INSTRUCTIONS, version=__version__)

    async def list_connections(
        filter: Annotated[str, Field(description=FILTER)] = "",
        limit: Annotated[
            int, Field(ge=1, le=500, description="How many of the newest matches to show.")
        ] = 30,
        since: Annotated[int | None, Field(ge=0, description=SINCE)] = None,
    ) -> CallToolResult:
        return _answer(lambda: inspector.list_connections(filter, limit, since))

    async def get_connection(
        id: Annotated[str, Field(description=ID)],
        max_body: Annotated[
            int,
            Field(ge=0, le=1_000_000, description="Bytes of each body (characters of WebSocket text) shown."),
        ] = DEFAULT_MAX_BODY,
        event_offset: Annotated[
            int,
            Field(ge=0, description="First message shown (from 0): pages through long streams and chats."),
        ] = 0,
        max_events: Annotated[int, Field(ge=1, le=5000, description="How many messages to show.")] = 200,
    ) -> CallToolResult:
        return _answer(lambda: inspector.get_connection(id, max_body, event_offset, max_events))

    async def wait_for_connections(
        filter: Annotated[str, Field(description=SAME_FILTER)] = "",
        timeout: Annotated[float, Field(ge=0, le=120, description="Seconds to wait at most.")] = 10.0,
        count: Annotated[int, Field(ge=1, le=50, description="How many matching connections to await.")] = 1,
        since: Annotated[
            int | None,
            Field(ge=0, description="The cursor to wait from. Default: the one of your previous call here."),
        ] = None,
    ) -> CallToolResult:
        try:
            data = await inspector.wait_for_connections(filter, timeout, count, since)
        except ToolError as exc:
            raise SDKToolError(str(exc)) from None
        return _result(data)

    async def get_violations(
        filter: Annotated[str, Field(description=SAME_FILTER)] = "",
        severity: Annotated[
            Literal["error", "warning", "notice"],
            Field(description="The least severity shown: error; warning (and errors); notice (all)."),
        ] = "notice",
        limit: Annotated[int, Field(ge=1, le=500, description="How many connections to show, newest.")] = 50,
    ) -> CallToolResult:
        return _answer(lambda: inspector.get_violations(filter, severity, limit))

    async def get_session_info() -> CallToolResult:
        return _answer(inspector.session_info)

    async def get_curl(
        id: Annotated[str, Field(description=ID)],
        base_url: Annotated[
            str | None,
            Field(description="Send it to http://host:port instead of where it was recorded."),
        ] = None,
    ) -> CallToolResult:
        return _answer(lambda: inspector.curl_command(id, base_url))

    server.add_tool(
        list_connections,
        title="List recorded connections",
        description=(
            "List the connections the app handled (HTTP requests, WebSockets, lifespan), newest last, "
            f"one compact summary each: {SUMMARY_KEYS} 'more' says how many older matches were left out. "
            "get_connection(id) gives everything about one."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    server.add_tool(
        get_connection,
        title="Show one connection in full",
        description=(
            "One connection in full: its summary, the scope (request headers as [name, value] pairs, secret "
            "values masked), the route the framework matched, the error and traceback if the app raised, "
            "every message in order as {t: ms since the connection began, dir: receive|send, type, its "
            "fields} (wait: ms the app spent inside that receive() or send(), when over 1 ms), and the ASGI "
            "violations with the index of the event at fault. Bodies: a JSON object or array as "
            "<field>_json, text as <field>, binary as <field>_base64 (its first 256 bytes); "
            "<field>_cut {shown, size, recorded} when not all of it is shown (a larger max_body shows "
            "more, up to 'recorded' when the recording itself kept less)."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    server.add_tool(
        wait_for_connections,
        title="Wait for the next matching connections",
        description=(
            "Wait until connections matching the filter have ended, then return their summaries (as "
            "list_connections does). For 'make the request, then look': make the request, then call this; "
            "it returns as soon as 'count' matching connections ended after 'since', which defaults to the "
            "cursor of your previous call here, so traffic you were already shown is not returned again. "
            "At the timeout it returns timed_out: true with what matched so far, matching connections still "
            "open (still_open), and a hint when no app is streaming."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    server.add_tool(
        get_violations,
        title="List ASGI protocol violations",
        description=(
            "Connections that broke a rule of the ASGI specification, as asgispy's checker found (a "
            "Content-Length that does not match the body, a body after the final one, a response never "
            "finished, a send before websocket.accept, a bad close code...): each with its summary line and, "
            "per violation, the rule id, severity, message and index of the event at fault; 'rules' says "
            "what each rule asks. Use it when a response is truncated, hangs or a server logs errors."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    server.add_tool(
        get_session_info,
        title="Where the traffic comes from",
        description=(
            "Where the recorded traffic comes from (a session file, or apps streaming live to this server "
            "and the address it listens on), which app processes recorded it and whether they are still "
            "connected, connections by type, errors, violations, the time range, and a hint when nothing "
            "arrives (how to connect the app). Call it first when list_connections comes back empty."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    server.add_tool(
        get_curl,
        title="A curl command replaying a request",
        description=(
            "A curl command that sends a recorded HTTP request again as the app received it (method, URL, "
            "headers, body byte for byte), to reproduce a bug or check a fix. Masked secrets stay "
            "'[redacted]' with a note to put the real value back."
        ),
        annotations=_READ_ONLY,
        structured_output=False,
    )
    add_intercept_tools(server, inspector.interception)
    return server


async def serve_stdio(inspector: Inspector) -> None:
    """Serve the tools over this process's stdin and stdout until the client goes away."""
    await build_server(inspector).run_stdio_async()
