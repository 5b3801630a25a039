"""Shared fixtures: a Spy wrapped around a recording middleware, and the checks on its export."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.recording import Harness


@pytest.fixture(autouse=True, scope="session")
def _private_default_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Spies built by tests stream to a socket of this run, where nobody listens unless a test
    starts a collector there, never to a dashboard the developer has open on the default one."""
    before = os.environ.get("ASGISPY_ADDRESS")
    os.environ["ASGISPY_ADDRESS"] = f"unix:{tmp_path_factory.mktemp('sock')}/nobody.sock"
    yield
    if before is None:
        os.environ.pop("ASGISPY_ADDRESS", None)
    else:
        os.environ["ASGISPY_ADDRESS"] = before


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A fresh folder with a short path, removed after the test: a Unix socket's path may not
    exceed 108 bytes, and pytest's ``tmp_path`` can be longer."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="asgispy-t-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def harness(tmp_path: Path) -> Callable[..., Harness]:
    """Build ``Spy(Recorder(app), **options)``; its ``check()`` exports, loads and compares."""
    count = 0

    def make(app: Any, **spy_options: Any) -> Harness:
        nonlocal count
        count += 1
        return Harness(app, tmp_path / f"session-{count}.json", **spy_options)

    return make


@pytest.fixture(scope="session")
def http() -> Iterator[Any]:
    """One httpx client for the session (building one costs more than a loopback request)."""
    import httpx

    with httpx.Client(timeout=10) as client:
        yield client
