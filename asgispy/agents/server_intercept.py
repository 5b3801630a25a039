"""The MCP tools that change traffic: breakpoints, held connections, rules, resend.

Apart from the reading tools (:mod:`asgispy.agents.server`) because they are not read-only:
their annotations say so, and an agent's host may ask its user before calling them. Like the
reading tools, they import the SDK only here and in ``server``; the work is in
:mod:`asgispy.agents.intercepting`.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import orjson
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as SDKToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from asgispy.agents.errors import ToolError
from asgispy.agents.intercepting import Interception
from asgispy.replay.editing import EditError, parse_request, parse_response, request_text, response_text

__all__ = ["add_intercept_tools"]

HELD_ID = "The id of a held connection, from list_held."
EDIT_TEXT = (
    "The request (request phase) or response (response phase) as text, edited from list_held's "
    "'text': first line 'METHOD /path?query' or the status, then 'name: value' headers, a blank "
    "line, the body. Leave a masked '[redacted]' value as it is to keep the real one. Omit to "
    "resume unchanged."
)
_CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
_READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


def _result(data: dict[str, Any]) -> CallToolResult:
    text = orjson.dumps(data, default=str).decode()
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


async def _answer(call: Callable[[], Awaitable[dict[str, Any]]]) -> CallToolResult:
    try:
        return _result(await call())
    except (ToolError, EditError) as exc:
        raise SDKToolError(str(exc)) from None


def _with_text(held: dict[str, Any]) -> dict[str, Any]:
    if held.get("phase") == "response" and "response" in held:
        return {**held, "text": response_text(held["response"])}
    return {**held, "text": request_text(held.get("request", {}))}


def add_intercept_tools(server: MCPServer[Any], interception: Callable[[], Interception]) -> None:
    """Register the tools on ``server``; ``interception`` gives the tools bound to the source now."""

    async def get_interception() -> CallToolResult:
        async def call() -> dict[str, Any]:
            return interception().state()

        return await _answer(call)

    async def set_breakpoints(
        expressions: Annotated[
            list[str],
            Field(description="Filter expressions; a matching connection is held. [] clears this phase's."),
        ],
        phase: Annotated[
            Literal["request", "response"],
            Field(description="request: before the app sees it; response: before the client gets it."),
        ] = "request",
        timeout: Annotated[
            float | None, Field(ge=0.1, le=3600, description="Seconds a held connection waits at most.")
        ] = None,
    ) -> CallToolResult:
        return await _answer(lambda: interception().set_breakpoints(expressions, phase, timeout=timeout))

    async def list_held() -> CallToolResult:
        async def call() -> dict[str, Any]:
            return {"held": [_with_text(h) for h in interception().held()["held"]]}

        return await _answer(call)

    async def resume_held(
        id: Annotated[str, Field(description=HELD_ID)],
        text: Annotated[str | None, Field(description=EDIT_TEXT)] = None,
    ) -> CallToolResult:
        async def call() -> dict[str, Any]:
            tools = interception()
            held = tools.store.held.get(id, {})
            edits: dict[str, Any] = {}
            if text:
                edits = parse_response(text) if held.get("phase") == "response" else parse_request(text)
            return await tools.decide(id, "resume", edits)

        return await _answer(call)

    async def answer_held(
        id: Annotated[str, Field(description=HELD_ID)],
        status: Annotated[int, Field(ge=100, le=999, description="The status to answer with.")] = 200,
        headers: Annotated[dict[str, str] | None, Field(description="Response headers.")] = None,
        body: Annotated[str, Field(description="The response body, as text.")] = "",
    ) -> CallToolResult:
        edits = {"status": status, "headers": list((headers or {}).items()), "body": body}
        return await _answer(lambda: interception().decide(id, "answer", edits))

    async def drop_held(id: Annotated[str, Field(description=HELD_ID)]) -> CallToolResult:
        return await _answer(lambda: interception().decide(id, "drop"))

    async def set_rule(
        producer: Annotated[str, Field(description="The app's producer tag, from get_interception.")],
        index: Annotated[int, Field(ge=0, description="The rule's index, from get_interception.")],
        enabled: Annotated[bool, Field(description="On (true) or off (false).")],
    ) -> CallToolResult:
        return await _answer(lambda: interception().set_rule(producer, index, enabled))

    async def resend(
        id: Annotated[str, Field(description="A recorded HTTP connection's id.")],
        text: Annotated[
            str | None,
            Field(
                description=(
                    "The request as text, edited (the form list_held shows); omit to send it as it was."
                )
            ),
        ] = None,
    ) -> CallToolResult:
        return await _answer(lambda: interception().resend(id, text))

    tools: list[tuple[Any, str, str, ToolAnnotations]] = [
        (
            get_interception,
            "Rules, breakpoints and held connections",
            "The apps that may be held and changed (served by asgispy run, or made with Spy(app, "
            "intercept=True), streaming to this server), each with its rules (index, what it does, on or "
            "off), addons and breakpoints, and the connections held now.",
            _READS,
        ),
        (
            set_breakpoints,
            "Set breakpoints",
            "Hold connections matching filter expressions (the list_connections language) in every app "
            "that may be held: a request before the app sees it, or a response (status: works) before the "
            "client gets it. Replaces that phase's breakpoints; [] clears them. A held connection waits "
            "alone (others go on) until resume_held, answer_held, drop_held, or its timeout.",
            _CHANGES,
        ),
        (
            list_held,
            "List held connections",
            "The connections waiting at a breakpoint now: id, phase, the request (and response) with "
            "secret header values masked, how long each has waited, and 'text', the form to edit for "
            "resume_held.",
            _READS,
        ),
        (
            resume_held,
            "Resume a held connection",
            "Let a held connection go on, unchanged or with the request (or response) edited as text. "
            "The change is recorded on the connection.",
            _CHANGES,
        ),
        (
            answer_held,
            "Answer a held request",
            "Answer a held connection with a response of your own; the app is not called for a held request.",
            _CHANGES,
        ),
        (
            drop_held,
            "Drop a held connection",
            "Drop a held connection: the client gets 502 'dropped at a breakpoint'; for a held request "
            "the app is not called.",
            _CHANGES,
        ),
        (
            set_rule,
            "Turn a rule on or off",
            "Turn one of an app's rules (mocks, delays, throttles, faults) on or off while it runs.",
            _CHANGES,
        ),
        (
            resend,
            "Send a request again",
            "Send a recorded HTTP request again to the live app that served it, as it was or edited as "
            "text; the answer is recorded as a new connection marked as resent from the first "
            "(filter 'resent').",
            _CHANGES,
        ),
    ]
    for fn, title, description, annotations in tools:
        server.add_tool(
            fn, title=title, description=description, annotations=annotations, structured_output=False
        )
