"""Headers as an addon edits them: text names and values, any case, repeats kept in order.

ASGI carries headers as a list of ``(bytes, bytes)`` pairs, names lower-cased. An addon wants
``headers["content-type"]`` and ``headers["X-Debug"] = "1"``: this class gives that over a list
of text pairs, and turns back into the ASGI list only if it was changed, so an untouched request
reaches the app with its very own header list.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableMapping

__all__ = ["Headers"]

RawHeaders = list[tuple[bytes, bytes]]


class Headers(MutableMapping[str, str]):
    """An ordered, case-insensitive multi-map of text headers.

    ``h[name]`` is the first value (``KeyError`` when absent); ``h[name] = v`` replaces every
    value of that name by one, where the first one stood; ``del h[name]`` removes them all;
    ``get_all``, ``add`` and ``set_all`` reach repeated names (``set-cookie``). Text is Latin-1,
    as HTTP headers are bytes in that encoding.
    """

    __slots__ = ("_fields", "changed")

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: list[tuple[str, str]] = [(str(k), str(v)) for k, v in fields]
        #: whether anything was set or removed since it was made (read by the engine)
        self.changed = False

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls((bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in raw)

    @classmethod
    def from_mapping(cls, values: Headers | dict[str, str] | Iterable[tuple[str, str]] | None) -> Headers:
        if values is None:
            return cls()
        if isinstance(values, Headers):
            return cls(values.fields())
        if isinstance(values, dict):
            return cls(values.items())
        return cls(values)

    def raw(self) -> RawHeaders:
        """The ASGI form: lower-cased names, Latin-1 bytes (a character outside it is an error)."""
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self._fields]

    def fields(self) -> list[tuple[str, str]]:
        """Every pair, in order, as given."""
        return list(self._fields)

    def __getitem__(self, name: str) -> str:
        key = name.lower()
        for k, v in self._fields:
            if k.lower() == key:
                return v
        raise KeyError(name)

    def __setitem__(self, name: str, value: str) -> None:
        key = name.lower()
        out: list[tuple[str, str]] = []
        placed = False
        for k, v in self._fields:
            if k.lower() == key:
                if not placed:
                    out.append((name, str(value)))
                    placed = True
            else:
                out.append((k, v))
        if not placed:
            out.append((name, str(value)))
        self._fields = out
        self.changed = True

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        kept = [(k, v) for k, v in self._fields if k.lower() != key]
        if len(kept) == len(self._fields):
            raise KeyError(name)
        self._fields = kept
        self.changed = True

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for k, _ in self._fields:
            if k.lower() not in seen:
                seen.add(k.lower())
                yield k

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._fields})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self._fields)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, v in self._fields if k.lower() == key]

    def add(self, name: str, value: str) -> None:
        """Append one more value of ``name`` (after any it has)."""
        self._fields.append((name, str(value)))
        self.changed = True

    def set_all(self, name: str, values: Iterable[str]) -> None:
        """Replace every value of ``name`` by ``values``, in order."""
        if name in self:
            del self[name]
        for value in values:
            self._fields.append((name, str(value)))
        self.changed = True

    def copy(self) -> Headers:
        copy = Headers(self._fields)
        copy.changed = self.changed
        return copy

    def __repr__(self) -> str:
        return f"Headers({self._fields!r})"
