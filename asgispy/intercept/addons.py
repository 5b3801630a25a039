"""Addons: Python hooks that change traffic, loaded from a file or given as objects.

A file (``asgispy run APP -s addon.py``) is run as a module of its own; its hooks are the
objects in a module-level list ``addons``, or, without one, the module's own functions. An
object's hooks are its attributes of these names, each optional, sync or async:

- ``request(exchange)``: before the app sees an HTTP request;
- ``response(exchange)``: before the client gets the response (see docs/intercept.md for
  streamed responses, which are never held: the hook sees their start);
- ``response_chunk(exchange, chunk)``: each chunk of a streamed response; returns the bytes to
  send, or None to drop the chunk;
- ``websocket_message(exchange, message)``: each WebSocket message, either way.

An addon may carry ``match`` (a filter expression: only matching connections reach it) and
``body = True`` (read the request body for its ``request`` hook even if its code does not name
``body``).
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgispy.filter.grammar import Filter, FilterError, parse
from asgispy.model.connection import Connection

__all__ = ["HOOKS", "Addon", "AddonError", "addons_from", "call_hook", "load_addon_file"]

HOOKS = ("request", "response", "response_chunk", "websocket_message")
#: names whose use in a hook's code means it reads the request body
_BODY_NAMES = frozenset({"body", "text"})
_loaded = itertools.count(1)


class AddonError(ValueError):
    """An addon that cannot be loaded: a missing file, a syntax error, no hooks, a bad match."""


@dataclass
class Addon:
    """One addon: its name, its hooks, and which connections it sees."""

    name: str
    hooks: dict[str, Callable[..., Any]]
    match: Filter | None = None
    reads_body: bool = False
    source: str = ""
    enabled: bool = True
    #: hooks whose code reads the request body (so it is read before they run)
    body_hooks: set[str] = field(default_factory=set)

    def matches(self, conn: Connection | None) -> bool:
        if not self.enabled:
            return False
        if self.match is None or conn is None:
            return self.match is None
        return self.match(conn)

    def hook(self, name: str) -> Callable[..., Any] | None:
        return self.hooks.get(name)

    def wants_body(self) -> bool:
        return self.reads_body or "request" in self.body_hooks


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _reads_body(fn: Callable[..., Any]) -> bool:
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return isinstance(code, types.CodeType) and bool(_names(code) & _BODY_NAMES)


def addon_from(obj: Any, source: str = "") -> Addon:
    """An :class:`Addon` from a module or an object, its hooks found by name."""
    hooks: dict[str, Callable[..., Any]] = {}
    for name in HOOKS:
        fn = getattr(obj, name, None)
        if fn is None:
            continue
        if not callable(fn):
            raise AddonError(f"{_label(obj)}: {name} is not callable")
        hooks[name] = fn
    if not hooks:
        raise AddonError(f"{_label(obj)} defines none of the hooks {', '.join(HOOKS)}")
    match_text = getattr(obj, "match", None)
    match = None
    if match_text is not None:
        if not isinstance(match_text, str):
            raise AddonError(f"{_label(obj)}: match must be a filter expression (text)")
        try:
            match = parse(match_text)
        except FilterError as exc:
            raise AddonError(f"{_label(obj)}: match {match_text!r}: {exc}") from exc
    label = getattr(obj, "name", None)
    return Addon(
        name=label if isinstance(label, str) and label else _label(obj),
        hooks=hooks,
        match=match,
        reads_body=getattr(obj, "body", False) is True,
        source=source,
        body_hooks={n for n, fn in hooks.items() if _reads_body(fn)},
    )


def _label(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        file = getattr(obj, "__file__", None)  # an addon file: named for the file, as the user calls it
        return Path(file).stem if file else obj.__name__.rpartition(".")[2]
    if isinstance(obj, type):
        return obj.__name__
    return type(obj).__name__


def load_addon_file(path: str | Path) -> list[Addon]:
    """The addons of one file, run as a fresh module (its errors as :class:`AddonError`)."""
    file = Path(path)
    if not file.is_file():
        raise AddonError(f"addon file {str(file)!r} does not exist")
    module_name = f"asgispy_addon_{next(_loaded)}_{file.stem}"
    spec = importlib.util.spec_from_file_location(module_name, file)
    if spec is None or spec.loader is None:
        raise AddonError(f"cannot load {str(file)!r} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise AddonError(f"{file}: {type(exc).__name__}: {exc}") from exc
    listed = getattr(module, "addons", None)
    if listed is None:
        return [addon_from(module, str(file))]
    if not isinstance(listed, (list, tuple)):
        raise AddonError(f"{file}: `addons` must be a list")
    return [addon_from(obj, str(file)) for obj in listed]


def addons_from(items: Iterable[Any]) -> list[Addon]:
    """Addons from what ``Spy(app, addons=...)`` was given: file paths, modules, objects."""
    out: list[Addon] = []
    for item in items:
        if isinstance(item, Addon):
            out.append(item)
        elif isinstance(item, (str, Path)):
            out.extend(load_addon_file(item))
        else:
            out.append(addon_from(item))
    return out


async def call_hook(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a hook, sync or async, and give what it returned."""
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result
