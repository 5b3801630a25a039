"""The agents' powers over traffic: breakpoints, held connections, rules, and sending a request
again. Plain async functions over a store and the collector that feeds it; no MCP here.

Only apps streaming live to ``asgispy mcp --listen`` and made with ``Spy(app, intercept=True)``
(``asgispy run`` makes them so) can be held or changed; for any other source these tools say so.
What they show of a held request has its secret header values masked; an edit that leaves a
value masked keeps the real one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from asgispy.agents.errors import ToolError
from asgispy.filter.grammar import FilterError, parse
from asgispy.filter.saved import spell_out
from asgispy.replay.editing import EditError, parse_request
from asgispy.replay.resend import base_url, request_doc, resend
from asgispy.store.store import Store

__all__ = ["Controller", "Interception"]

#: How long a tool waits for the apps to confirm a change
CONFIRM = 3.0


class Controller(Protocol):
    """What sends a viewer's requests to the apps: the collector."""

    def control(self, producer: str, request: dict[str, Any]) -> bool: ...

    def controllable(self) -> list[str]: ...


class Interception:
    """The tools, bound to a store and, for a live source, its collector."""

    def __init__(self, store: Store, controller: Controller | None) -> None:
        self.store = store
        self.controller = controller

    def _apps(self, producer: str | None = None) -> list[str]:
        if self.controller is None:
            raise ToolError(
                "this source is a saved session: holding and changing traffic needs the live app. Start "
                "asgispy mcp --listen, and serve the app with asgispy run (or Spy(app, intercept=True))"
            )
        tags = self.controller.controllable()
        if producer is not None:
            if producer not in tags:
                raise ToolError(f"no controllable app {producer!r} is connected; these are: {tags or 'none'}")
            return [producer]
        if not tags:
            raise ToolError(
                "no connected app may be held: serve it with asgispy run, or make it with "
                "Spy(app, intercept=True); apps without it can be watched, never held"
            )
        return tags

    def state(self) -> dict[str, Any]:
        """Every controllable app's rules, addons, breakpoints and held connections."""
        apps = []
        for tag in self._apps():
            state = self.store.producers[tag].control if tag in self.store.producers else None
            info = self.store.producers[tag].info if tag in self.store.producers else None
            item: dict[str, Any] = {"producer": tag, "app": info.app if info else "?"}
            for key in ("rules", "addons", "breakpoints", "timeout", "error"):
                if state and state.get(key):
                    item[key] = state[key]
            apps.append(item)
        return {"apps": apps, "held": self.held()["held"]}

    def held(self) -> dict[str, Any]:
        """The connections waiting at a breakpoint now, oldest first, with how long they waited."""
        now = time.time()
        held = sorted(self.store.held.values(), key=lambda h: float(h.get("since", 0)))
        return {"held": [{**h, "waiting_s": round(now - float(h.get("since", now)), 1)} for h in held]}

    async def _confirm(self, tags: list[str], done: Any) -> bool:
        deadline = time.monotonic() + CONFIRM
        while time.monotonic() < deadline:
            if all(done(self.store.producers[t].control or {}) for t in tags if t in self.store.producers):
                return True
            await asyncio.sleep(0.02)
        return False

    async def set_breakpoints(
        self,
        expressions: list[str],
        phase: str = "request",
        producer: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Replace the breakpoints of one phase (the other phase's stay) in every controllable app."""
        if phase not in ("request", "response"):
            raise ToolError("phase is request or response")
        spelt = []
        for expression in expressions:
            try:
                # The app's process knows no saved filters: @name goes to it written out.
                spelt.append(spell_out(expression))
                parse(spelt[-1])
            except FilterError as exc:
                raise ToolError(f"breakpoint {expression!r}: {exc}") from None
        expressions = spelt
        tags = self._apps(producer)
        assert self.controller is not None
        for tag in tags:
            current = (self.store.producers[tag].control or {}).get("breakpoints", [])
            kept = [p for p in current if p.get("phase") != phase]
            points = [*kept, *({"expression": e, "phase": phase} for e in expressions)]
            request: dict[str, Any] = {"kind": "breakpoints", "points": points}
            if timeout is not None:
                request["timeout"] = timeout
            self.controller.control(tag, request)

        def applied(state: dict[str, Any]) -> bool:
            mine = [p["expression"] for p in state.get("breakpoints", []) if p.get("phase") == phase]
            return mine == [e.strip() for e in expressions]

        confirmed = await self._confirm(tags, applied)
        return {**self.state(), "confirmed": confirmed}

    async def set_rule(self, producer: str, index: int, enabled: bool) -> dict[str, Any]:
        """Turn rule ``index`` of one app on or off."""
        tags = self._apps(producer)
        assert self.controller is not None
        self.controller.control(tags[0], {"kind": "rule", "index": index, "enabled": enabled})

        def applied(state: dict[str, Any]) -> bool:
            rules = state.get("rules", [])
            return index < len(rules) and rules[index].get("enabled") is enabled

        confirmed = await self._confirm(tags, applied)
        return {**self.state(), "confirmed": confirmed}

    async def decide(self, id: str, action: str, edits: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume (with edits), answer or drop the held connection ``id``."""
        held = self.store.held.get(id)
        if held is None:
            waiting = ", ".join(self.store.held) or "none"
            raise ToolError(f"connection {id} is not held (held now: {waiting}); list_held shows them")
        if action not in ("resume", "answer", "drop"):
            raise ToolError("action is resume, answer or drop")
        tag = str(held.get("producer", ""))
        self._apps(tag)
        assert self.controller is not None
        self.controller.control(tag, {"kind": "decide", "id": id, "action": action, "edits": edits or {}})
        deadline = time.monotonic() + CONFIRM
        while id in self.store.held and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return {"id": id, "action": action, "released": id not in self.store.held}

    async def resend(self, id: str, text: str | None = None) -> dict[str, Any]:
        """Send recorded request ``id`` again to the live app, as it was or as ``text`` edits it."""
        conn = self.store.get(id)
        if conn is None or conn.type != "http":
            raise ToolError(f"no HTTP connection {id}; list_connections shows the ids")
        url = base_url(conn)
        if url is None:
            raise ToolError("the app's address is not in the recording (a Unix socket?): use get_curl")
        try:
            doc = parse_request(text) if text else request_doc(conn)
        except EditError as exc:
            raise ToolError(f"the request text: {exc}") from None
        result = await resend(doc, id, url=url)
        out: dict[str, Any] = {"resent_from": id, "to": url, "status": result.status}
        if result.missing_secrets:
            out["left_out"] = result.missing_secrets
            out["hint"] = "masked headers were left out: set ASGISPY_SECRET_<NAME> where asgispy mcp runs"
        if result.error:
            out["error"] = result.error
        out["note"] = "the answer is a new connection: wait_for_connections with filter 'resent' shows it"
        return out
