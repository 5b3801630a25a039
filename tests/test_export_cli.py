"""``asgispy export`` run as a user runs it, on traffic recorded from a real uvicorn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import asgispy as api
from tests.apps.replayable import build
from tests.test_replay import asgispy, record


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(build(), tmp_path_factory.mktemp("export") / "recorded.json")


def documents(path: Path) -> list[dict[str, object]]:
    return [c.document() for c in api.load(path).connections]


def test_json_and_jsonl_load_back_as_the_same_connections(session: Path, tmp_path: Path) -> None:
    for name in ("copy.json", "copy.jsonl"):
        result = asgispy("export", str(session), "-o", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        assert documents(tmp_path / name) == documents(session)
    assert (tmp_path / "copy.jsonl").read_text().splitlines()[0].startswith('{"format":"asgispy-events"')


def test_har_to_a_file_and_curl_to_stdout_with_a_filter(session: Path, tmp_path: Path) -> None:
    result = asgispy("export", str(session), "--filter=-type:websocket", "-o", str(tmp_path / "out.har"))
    assert result.returncode == 0 and "as har" in result.stderr
    entries = json.loads((tmp_path / "out.har").read_text())["log"]["entries"]
    assert [e["request"]["url"].split("/", 3)[3] for e in entries] == [
        "items",
        "items/7",
        "echo",
        "hello",
        "me",
    ]
    curl = asgispy("export", str(session), "--format", "curl", "--filter", "path:/items/7")
    assert (
        curl.returncode == 0
        and curl.stdout.startswith("curl http://127.0.0.1:")
        and "/items/7" in curl.stdout
    )
    assert curl.stdout.count("curl ") == 1


def test_mistakes_are_clear(session: Path, tmp_path: Path) -> None:
    missing = asgispy("export", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "nope.json" in missing.stderr
    bad = asgispy("export", str(session), "--filter", "status:abc")
    assert bad.returncode == 2 and "--filter" in bad.stderr
