"""``asgispy check --format ...`` over a session recorded from a misbehaving app behind uvicorn.

The app makes real mistakes (a wrong Content-Length the server cuts short, an upper-case
header name, a body in answer to HEAD, a header pair of str that carries a secret); the
session Spy exported is checked by the CLI as a subprocess, and each report is read back with
a real reader: the SARIF log against the official SARIF 2.1.0 schema, the JUnit XML with
``xml.etree`` and ``junitparser``, the GitHub lines by the runner's own escaping rules.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import jsonschema
import pytest

import asgispy
from asgispy import Spy
from asgispy.analysis.rules import RULES
from tests.servers import UVICORN_H11, serve

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
TIMEOUT = 5.0
#: a secret the app puts where a violation's message quotes it
SECRET = "s3cr3t-cookie-value"
#: a path with the characters workflow-command properties and messages must escape
ODD_PATH = "/odd,path:50%"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await receive()
    path = scope["path"]
    if path == "/wrong-length":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"short"})
    elif path in ("/upper", ODD_PATH):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"X-Upper", b"1")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif path == "/head":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"body"})
    elif path == "/str-cookie":
        try:  # uvicorn refuses str headers; the mistake is recorded before it does
            await send({"type": "http.response.start", "status": 200, "headers": [("set-cookie", SECRET)]})
        except Exception:
            await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"fine"})


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(a session with violations, a clean one), recorded through a real server."""
    where = tmp_path_factory.mktemp("check")
    spy = Spy(app, address=False)
    with serve(spy, UVICORN_H11) as server, httpx.Client(timeout=TIMEOUT) as client:
        client.get(server.url("/"), headers={"authorization": "Bearer " + SECRET})
        clean = spy.export(where / "clean.json")
        with pytest.raises(httpx.HTTPError):
            client.get(server.url("/wrong-length"))
        client.get(server.url("/upper"))
        client.get(server.url("/upper?again=1"))  # the same mistake on another connection
        client.get(server.url("/odd,path:50%25"))
        client.head(server.url("/head"))
        client.get(server.url("/str-cookie"), headers={"cookie": "id=" + SECRET})
    broken = spy.export(where / "broken.json")
    yield broken, clean


def check(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "asgispy", "check", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


def expected(session: Path) -> list[tuple[str, str, str]]:
    """(rule, severity, path) of every violation, as the library loads the session."""
    loaded = asgispy.load(session)
    return [(v.rule, v.severity, c.path) for c in loaded.connections for v in c.violations]


def test_the_recorded_session_has_the_mistakes_the_app_made(sessions: tuple[Path, Path]) -> None:
    broken, clean = sessions
    found = {(rule, path) for rule, _severity, path in expected(broken)}
    assert {
        ("http.content-length", "/wrong-length"),
        ("http.header-case", "/upper"),
        ("http.header-case", ODD_PATH),
        ("http.head-body", "/head"),
        ("http.headers-type", "/str-cookie"),
    } <= found
    assert expected(clean) == []


def test_json_lists_every_violation_with_its_connection(sessions: tuple[Path, Path]) -> None:
    broken, clean = sessions
    done = check(str(broken), "--format", "json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["failed"] is True and report["fail_on"] == "error"
    rows = [(v["rule"], v["severity"], v["path"]) for v in report["violations"]]
    assert rows == expected(broken)
    assert report["counts"] == {s: sum(1 for r in rows if r[1] == s) for s in ("error", "warning", "notice")}
    (length,) = [v for v in report["violations"] if v["rule"] == "http.content-length"]
    assert length["method"] == "GET" and length["status"] == 200
    assert (
        length["event"] == 2
        and length["event_type"] == "http.response.body"
        and length["direction"] == "send"
    )
    assert SECRET not in done.stdout

    empty = check(str(clean), "--format", "json")
    assert empty.returncode == 0, empty.stderr
    report = json.loads(empty.stdout)
    assert report["violations"] == [] and report["failed"] is False
    assert report["connections"] == len(asgispy.load(clean).connections) > 0


def test_fail_on_and_show_work_in_every_format(sessions: tuple[Path, Path]) -> None:
    broken, _clean = sessions
    errors_only = json.loads(check(str(broken), "--format", "json", "--show", "error").stdout)
    assert {v["severity"] for v in errors_only["violations"]} == {"error"}
    assert errors_only["counts"]["warning"] >= 2  # counted, though not listed
    filtered = check(str(broken), "--format", "sarif", "--filter", "path:/upper")
    assert filtered.returncode == 0, filtered.stderr  # a warning does not fail by default
    assert {r["ruleId"] for r in json.loads(filtered.stdout)["runs"][0]["results"]} == {"http.header-case"}
    strict = check(str(broken), "--format", "github", "--filter", "path:/upper", "--fail-on", "warning")
    assert strict.returncode == 1


def sarif_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return schema


def validate_sarif(log: dict[str, Any]) -> None:
    schema = sarif_schema()
    jsonschema.Draft4Validator.check_schema(schema)
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(log)


def test_sarif_is_valid_and_points_into_the_session_file(sessions: tuple[Path, Path], tmp_path: Path) -> None:
    broken, _clean = sessions
    work = broken.parent
    out = tmp_path / "asgispy.sarif"
    done = check(broken.name, "--format", "sarif", "-o", str(out), cwd=work)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # the report went to the file
    log = json.loads(out.read_text(encoding="utf-8"))
    validate_sarif(log)
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert (
        driver["name"] == "asgispy" and driver["version"] and driver["informationUri"].startswith("https://")
    )
    assert [r["id"] for r in driver["rules"]] == list(RULES)
    levels = {"error": "error", "warning": "warning", "notice": "note"}
    for descriptor in driver["rules"]:
        rule = RULES[descriptor["id"]]
        assert descriptor["defaultConfiguration"]["level"] == levels[rule.severity]
        assert descriptor["shortDescription"]["text"] == rule.title
    assert [(r["ruleId"], r["level"]) for r in run["results"]] == [
        (rule, levels[severity]) for rule, severity, _path in expected(broken)
    ]
    session_lines = broken.read_text(encoding="utf-8").splitlines()
    for result in run["results"]:
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "broken.json"  # relative to the working directory
        line = session_lines[physical["region"]["startLine"] - 1]
        assert f'"{result["properties"]["connection"]}"' in line  # the line where the connection begins
        (logical,) = location["logicalLocations"]
        assert logical["name"].endswith("#" + result["properties"]["connection"])
        assert result["partialFingerprints"]
    assert SECRET not in out.read_text(encoding="utf-8")

    # the same mistakes fingerprint the same, run after run, whatever the connection ids
    fingerprints = [next(iter(r["partialFingerprints"].values())) for r in run["results"]]
    again = json.loads(check(broken.name, "--format", "sarif", cwd=work).stdout)["runs"][0]["results"]
    assert [next(iter(r["partialFingerprints"].values())) for r in again] == fingerprints
    cased = [
        (r["properties"]["path"], r["properties"]["connection"], f)
        for f, r in zip(fingerprints, run["results"], strict=True)
        if r["ruleId"] == "http.header-case"
    ]
    (first, second) = [row for row in cased if row[0] == "/upper"]
    (odd,) = [row for row in cased if row[0] == ODD_PATH]
    assert first[1] != second[1] and first[2] == second[2]  # one mistake on one endpoint: one alert
    assert odd[2] != first[2]


def test_sarif_of_a_session_outside_the_working_directory_uses_a_file_uri(
    sessions: tuple[Path, Path], tmp_path: Path
) -> None:
    broken, _clean = sessions
    log = json.loads(check(str(broken), "--format", "sarif", cwd=tmp_path).stdout)
    validate_sarif(log)
    uris = {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in log["runs"][0]["results"]
    }
    (uri,) = uris
    assert uri.startswith("file:///") and Path(unquote(uri.removeprefix("file://"))) == broken.resolve()


def test_a_clean_session_gives_an_empty_valid_sarif_log(sessions: tuple[Path, Path]) -> None:
    _broken, clean = sessions
    done = check(str(clean), "--format", "sarif")
    assert done.returncode == 0, done.stderr
    log = json.loads(done.stdout)
    validate_sarif(log)
    assert log["runs"][0]["results"] == [] and log["runs"][0]["tool"]["driver"]["rules"]


def test_an_invalid_log_is_refused_by_the_schema(sessions: tuple[Path, Path]) -> None:
    """The schema is really checked: a result with an unknown level does not pass."""
    broken, _clean = sessions
    log = json.loads(check(str(broken), "--format", "sarif").stdout)
    log["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        validate_sarif(log)


def test_junit_has_a_test_case_per_connection_and_a_failure_per_error(
    sessions: tuple[Path, Path], tmp_path: Path
) -> None:
    import junitparser

    broken, clean = sessions
    out = tmp_path / "check.xml"
    done = check(str(broken), "--format", "junit", "--output", str(out))
    assert done.returncode == 1, done.stderr
    found = expected(broken)
    errors = [row for row in found if row[1] == "error"]
    connections = asgispy.load(broken).connections

    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "asgispy check"
    assert int(suite.get("tests", -1)) == len(connections) == len(suite.findall("testcase"))
    assert int(suite.get("failures", -1)) == len(errors) and suite.get("errors") == "0"
    failures = [(f.get("type"), case.get("classname")) for case in suite for f in case.findall("failure")]
    assert failures == [(rule, path) for rule, _severity, path in errors]
    names = {case.get("name") for case in suite}
    assert {f"{c.method} {c.path} #{c.id}" for c in connections if c.type == "http"} <= names
    upper, _again = [case for case in suite if case.get("classname") == "/upper"]
    assert upper.find("failure") is None
    out_text = upper.findtext("system-out") or ""
    assert "http.header-case" in out_text and "X-Upper" in out_text  # a warning: listed, not failed
    assert SECRET not in out.read_text(encoding="utf-8")

    # an independent JUnit reader agrees
    xml = junitparser.JUnitXml.fromfile(str(out))
    (parsed,) = list(xml)
    assert parsed.tests == len(connections) and parsed.failures == len(errors)
    failed = [case for case in parsed if not case.is_passed]
    assert sorted(case.classname for case in failed) == sorted(path for _r, _s, path in errors)
    (length,) = [case for case in failed if case.classname == "/wrong-length"]
    (failure,) = length.result
    assert failure.type == "http.content-length" and "Content-Length" in (failure.message or "")

    clean_done = check(str(clean), "--format", "junit")
    assert clean_done.returncode == 0, clean_done.stderr
    (clean_suite,) = list(junitparser.JUnitXml.fromstring(clean_done.stdout.encode()))
    assert clean_suite.failures == 0 and clean_suite.tests == len(asgispy.load(clean).connections)
    assert all(case.is_passed for case in clean_suite)


def unescape_data(text: str) -> str:
    """What the Actions runner does to a command's message."""
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def unescape_property(text: str) -> str:
    return unescape_data(text.replace("%3A", ":").replace("%2C", ","))


def read_command(line: str) -> tuple[str, dict[str, str], str]:
    """A workflow command as the runner reads it: ``::name k=v,k=v::message``."""
    assert line.startswith("::")
    head, message = line[2:].split("::", 1)
    name, _, props = head.partition(" ")
    pairs = dict(pair.split("=", 1) for pair in props.split(",")) if props else {}
    return name, {k: unescape_property(v) for k, v in pairs.items()}, unescape_data(message)


def test_github_annotations_escape_what_the_runner_reads(sessions: tuple[Path, Path]) -> None:
    broken, clean = sessions
    done = check(broken.name, "--format", "github", cwd=broken.parent)
    assert done.returncode == 1, done.stderr
    *commands, summary = done.stdout.splitlines()
    read = [read_command(line) for line in commands]
    levels = {"error": "error", "warning": "warning", "notice": "notice"}
    assert [(name, props["title"]) for name, props, _m in read] == [
        (levels[severity], f"asgispy {rule}") for rule, severity, _path in expected(broken)
    ]
    session_lines = broken.read_text(encoding="utf-8").splitlines()
    for _name, props, message in read:
        assert props["file"] == "broken.json"
        match = re.search(r" #(\S+?): ", message)
        assert match is not None, message
        conn_id = match.group(1)
        assert f'"{conn_id}"' in session_lines[int(props["line"]) - 1]
    (odd,) = [message for _n, _p, message in read if ODD_PATH in message]
    assert odd.startswith(f"GET {ODD_PATH} #")  # the comma, colon and percent came through
    assert any("%25" in line for line in commands)  # and were escaped on the way
    assert summary.startswith("asgispy check failed:") and "2 errors" in summary
    assert SECRET not in done.stdout

    calm = check(str(clean), "--format", "github")
    assert calm.returncode == 0 and calm.stdout.splitlines() == [calm.stdout.strip()]
    assert calm.stdout.startswith("asgispy check passed:")


def test_text_stays_the_default_and_bad_input_exits_2(sessions: tuple[Path, Path], tmp_path: Path) -> None:
    broken, _clean = sessions
    default = check(str(broken))
    assert default.returncode == 1
    assert default.stdout == check(str(broken), "--format", "text").stdout
    assert "http.content-length at message 3 (send http.response.body)" in default.stdout
    written = tmp_path / "check.txt"
    assert check(str(broken), "-o", str(written)).stdout == ""
    assert written.read_text(encoding="utf-8") == default.stdout
    assert check(str(broken), "-o", "-").stdout == default.stdout

    missing = check(str(tmp_path / "nope.json"), "--format", "sarif")
    assert missing.returncode == 2 and "nope.json" in missing.stderr and "Traceback" not in missing.stderr
    nowhere = check(str(broken), "--format", "json", "-o", str(tmp_path / "no" / "dir" / "r.json"))
    assert nowhere.returncode == 2 and "cannot write" in nowhere.stderr and "Traceback" not in nowhere.stderr
    unknown = check(str(broken), "--format", "xml")
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_an_event_log_is_checked_and_pointed_into_too(sessions: tuple[Path, Path], tmp_path: Path) -> None:
    broken, _clean = sessions
    log = tmp_path / "broken.jsonl"
    exported = subprocess.run(
        [sys.executable, "-m", "asgispy", "export", str(broken), "--format", "jsonl", "-o", str(log)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert exported.returncode == 0, exported.stderr
    done = check(log.name, "--format", "github", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    *commands, _summary = done.stdout.splitlines()
    assert len(commands) == len(expected(broken))
    log_lines = log.read_text(encoding="utf-8").splitlines()
    for _name, props, message in (read_command(line) for line in commands):
        match = re.search(r" #(\S+?): ", message)
        assert match is not None and props["file"] == "broken.jsonl"
        assert f'"{match.group(1)}"' in log_lines[int(props["line"]) - 1]
