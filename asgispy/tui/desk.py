"""The dashboard's side of the control line: its breakpoints, and its decisions on what is held.

The dashboard keeps one set of breakpoints for every app it shows; each app that may be
controlled (``asgispy run``, ``Spy(app, intercept=True)``) gets it as soon as it says what it
has, and again whenever what it says differs (a restarted worker starts with none). Decisions
and rule switches go to the app that holds the connection or owns the rule. An app that may
not be controlled is never sent anything; a dashboard that quits leaves nothing held (the app
resumes what it held when the line goes).
"""

from __future__ import annotations

from typing import Any, Protocol

from asgispy.store.store import Store

__all__ = ["Controller", "Desk"]


class Controller(Protocol):
    def control(self, producer: str, request: dict[str, Any]) -> bool: ...

    def controllable(self) -> list[str]: ...


class Desk:
    """Breakpoints for every app, and the way to resume, answer or drop what they hold."""

    def __init__(
        self,
        store: Store,
        controller: Controller | None,
        breakpoints: list[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> None:
        self.store = store
        self.controller = controller
        self.points: list[dict[str, str]] = [{"expression": e, "phase": p} for e, p in breakpoints or ()]
        self.timeout = timeout

    @property
    def apps(self) -> list[str]:
        """The apps shown that may be held and changed."""
        if self.controller is None:
            return []
        return self.controller.controllable()

    def _request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"kind": "breakpoints", "points": list(self.points)}
        if self.timeout is not None:
            request["timeout"] = self.timeout
        return request

    def sync(self) -> None:
        """Give every controllable app this dashboard's breakpoints where it has others."""
        if self.controller is None:
            return
        wanted = [(p["expression"], p["phase"]) for p in self.points]
        for tag in self.controller.controllable():
            state = self.store.producers[tag].control if tag in self.store.producers else None
            if state is None:
                continue  # it has not said what it has yet; it will, at once
            has = [(p.get("expression"), p.get("phase")) for p in state.get("breakpoints", [])]
            timeout_differs = self.timeout is not None and state.get("timeout") != self.timeout
            if has != wanted or timeout_differs:
                self.controller.control(tag, self._request())

    def toggle(self, expression: str, phase: str = "request") -> bool:
        """Add the breakpoint, or remove it if it is set; True when it is now set."""
        point = {"expression": expression.strip(), "phase": phase}
        if point in self.points:
            self.points.remove(point)
            added = False
        else:
            self.points.append(point)
            added = True
        self.sync()
        return added

    def remove(self, index: int) -> None:
        del self.points[index]
        self.sync()

    def decide(self, id: str, action: str, edits: dict[str, Any] | None = None) -> bool:
        """Resume (with ``edits``), answer or drop held connection ``id``; False if it is not held."""
        held = self.store.held.get(id)
        if held is None or self.controller is None:
            return False
        request = {"kind": "decide", "id": id, "action": action, "edits": edits or {}}
        return self.controller.control(str(held.get("producer", "")), request)

    def toggle_rule(self, producer: str, index: int) -> bool:
        """Turn an app's rule off if on, on if off; False if that app is not controllable."""
        state = self.store.producers[producer].control if producer in self.store.producers else None
        rules = (state or {}).get("rules", [])
        if self.controller is None or index >= len(rules):
            return False
        enabled = not rules[index].get("enabled", True)
        return self.controller.control(producer, {"kind": "rule", "index": index, "enabled": enabled})

    def rules(self) -> list[tuple[str, dict[str, Any]]]:
        """Every controllable app's rules, as ``(producer, rule)``."""
        out: list[tuple[str, dict[str, Any]]] = []
        for tag in self.apps:
            state = self.store.producers[tag].control if tag in self.store.producers else None
            out.extend((tag, rule) for rule in (state or {}).get("rules", []))
        return out
