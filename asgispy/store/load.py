"""Loading saved sessions back into the model."""

from __future__ import annotations

import os

from asgispy.capture.sessionfile import SessionFileError, read_session
from asgispy.store.model import Session

__all__ = ["SessionFileError", "load"]


def load(path: str | os.PathLike[str]) -> Session:
    """Read a session file written by ``Spy.export`` or ``asgispy record``.

    Raises SessionFileError, with the reason, for a file that is not a readable session.
    """
    doc = read_session(path)
    try:
        return Session.from_document(doc)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise SessionFileError(f"{path}: malformed session: {exc}") from exc
