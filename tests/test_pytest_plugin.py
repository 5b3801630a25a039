"""asgispy's pytest plugin, run by pytest itself (pytester) on small test files of a user's."""

from __future__ import annotations

from pathlib import Path

import pytest

import asgispy

APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def items(request):
    return JSONResponse({"items": [1, 2]})


async def broken(request):
    return JSONResponse({"detail": "the kettle is on fire"}, status_code=500)


app = Starlette(routes=[Route("/items", items), Route("/broken", broken)])
"""

TESTS = """
import httpx
import pytest
from starlette.testclient import TestClient

from shop import app


def test_passes():
    with TestClient(app) as client:
        assert client.get("/items").json() == {"items": [1, 2]}


def test_fails():
    client = TestClient(app)
    client.get("/items")
    assert client.get("/broken").status_code == 200


@pytest.mark.anyio
async def test_async_transport_fails():
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
        assert (await client.get("/broken")).status_code == 200


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest on the user's files, as the user runs it: in a process of its own (asgispy's
    plugin found through its entry point, like every installed plugin)."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


@pytest.fixture(autouse=True)
def own_snapshot_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user's pytest gets a snapshot folder of its own: the textual-snapshot plugin names its
    folder in the environment and removes it at the end, which must not be this session's."""
    monkeypatch.setenv("TEXTUAL_SNAPSHOT_TEMPDIR", str(tmp_path / "inner-snapshots"))


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(shop=APP, test_shop=TESTS)
    return pytester


def test_off_unless_asked(project: pytest.Pytester) -> None:
    result = run(project)
    result.assert_outcomes(passed=1, failed=2)
    assert "-- asgispy --" not in result.stdout.str()
    assert not (project.path / ".asgispy").exists()


def test_a_failing_test_shows_its_traffic_and_leaves_a_session(project: pytest.Pytester) -> None:
    result = run(project, "--asgispy")
    result.assert_outcomes(passed=1, failed=2)  # the plugin changes no outcome
    out = result.stdout.str()
    assert "-- asgispy --" in out
    assert "GET /items 200" in out and "GET /broken 500" in out
    assert "response body of GET /broken" in out and "the kettle is on fire" in out
    sessions = sorted((project.path / ".asgispy").glob("*.json"))
    assert [p.name for p in sessions] == [
        "test_shop.py_test_async_transport_fails.json",
        "test_shop.py_test_fails.json",
    ]  # nothing for the test that passed
    paths = [c.path for c in asgispy.load(sessions[1]).connections if c.type == "http"]
    assert paths == ["/items", "/broken"]
    assert f"asgispy open {sessions[1].relative_to(project.path)}" in out or str(sessions[1].name) in out


def test_all_keeps_passing_tests_too(project: pytest.Pytester) -> None:
    result = project.runpytest(
        "-p", "no:cacheprovider", "--asgispy", "--asgispy-all", "--asgispy-dir", "traffic"
    )
    result.assert_outcomes(passed=1, failed=2)
    names = sorted(p.name for p in (project.path / "traffic").glob("*.json"))
    assert "test_shop.py_test_passes.json" in names and len(names) == 3
    passing = asgispy.load(project.path / "traffic" / "test_shop.py_test_passes.json")
    assert [c.type for c in passing.connections] == ["lifespan", "http"]  # TestClient ran the lifespan


def test_a_test_reads_its_own_traffic_from_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(shop=APP)
    pytester.makepyfile(
        test_own="""
from starlette.testclient import TestClient

from shop import app


def test_traffic(asgispy):
    client = TestClient(app)
    client.get("/items")
    client.get("/broken")
    http = [c for c in asgispy.connections if c.type == "http"]
    assert [(c.path, c.status) for c in http] == [("/items", 200), ("/broken", 500)]
    assert all(not c.violations for c in http)


def test_not_recorded_without_the_fixture():
    from starlette.testclient import TestClient as Client
    assert Client.__init__.__module__ == "starlette.testclient"
"""
    )
    result = run(pytester)
    result.assert_outcomes(passed=2)
    assert not (Path(pytester.path) / ".asgispy").exists()


def test_an_agent_reads_the_failing_tests_traffic_from_the_folder(project: pytest.Pytester) -> None:
    """``pytest --asgispy`` leaves one session per failing test; ``asgispy mcp --session DIR``
    serves them all at once, each connection's id naming the test it came from."""
    pytest.importorskip("mcp")
    import json
    import sys

    import anyio
    from mcp import ClientSession, StdioServerParameters, stdio_client

    run(project, "--asgispy").assert_outcomes(passed=1, failed=2)
    folder = project.path / ".asgispy"
    files = sorted(path.stem for path in folder.glob("*.json"))
    assert len(files) == 2

    async def body() -> dict[str, dict[str, object]]:
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "asgispy", "mcp", "--session", str(folder)], cwd=str(folder)
        )
        with (project.path / "mcp.err").open("w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write, read_timeout_seconds=30) as session,
            ):
                await session.initialize()
                calls = {
                    "info": ("get_session_info", {}),
                    "broken": ("list_connections", {"filter": "path:/broken"}),
                }
                results = {}
                for key, (tool, arguments) in calls.items():
                    result = await session.call_tool(tool, arguments)
                    assert not result.is_error, result.content
                    results[key] = json.loads(result.content[0].text)  # type: ignore[union-attr]
                (first, _) = results["broken"]["connections"]
                detail = await session.call_tool("get_connection", {"id": first["id"]})
                results["detail"] = json.loads(detail.content[0].text)  # type: ignore[union-attr]
                return results

    results = anyio.run(body)
    assert results["info"]["source"] == {
        "kind": "folder",
        "path": str(folder),
        "files": 2,
        "reread": "whenever a session file in it comes, goes or changes",
    }
    broken = results["broken"]["connections"]
    assert sorted(c["id"].split(":")[0] for c in broken) == files
    assert all(c["status"] == 500 for c in broken)
    assert results["detail"]["status"] == 500 and "the kettle is on fire" in json.dumps(results["detail"])
