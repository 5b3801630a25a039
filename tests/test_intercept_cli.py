"""Rules and addons from the command line, as a user runs them: ``asgispy record APP --rules FILE
-s addon.py`` serves the app with them, and the session file says what each did; bad files are
refused before a server starts."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import asgispy
from tests.test_record import ROOT, Recorder, workdir  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(60)

RULES = """
[[rule]]
name = "maintenance"
match = "path:/down*"
respond = { status = 503, headers = { "retry-after" = "30" }, body = "back soon" }
"""

ADDON = """
def request(exchange):
    exchange.request.headers["x-from-addon"] = "1"


def response(exchange):
    if exchange.response.body is not None:
        exchange.response.body = exchange.response.body + b" (via addon)"
"""


def test_record_serves_the_app_with_rules_and_addons(workdir: Path) -> None:  # noqa: F811
    (workdir / "rules.toml").write_text(RULES)
    (workdir / "addon.py").write_text(ADDON)
    args = ["recapp:app", "--app-dir", str(workdir), "--port", "0", "-o", "out.json"]
    recorder = Recorder([*args, "--rules", "rules.toml", "-s", "addon.py"], workdir)
    try:
        port = recorder.port
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            down = http.get("/down/now")
            assert (down.status_code, down.headers["retry-after"], down.text) == (503, "30", "back soon")
            assert http.post("/upload", content=b"hi").text == "got hi (via addon)"
        recorder.wait_for(recorder.out, r"POST /upload 201")
    finally:
        code = recorder.finish(signal.SIGTERM)
    assert code == 0, recorder.err
    by_path = {c.path: c for c in asgispy.load(workdir / "out.json") if c.type == "http"}
    assert [(i["by"], i["what"]) for i in by_path["/down/now"].interventions] == [
        ("maintenance", "respond 503 without the app")
    ]
    assert [i["by"] for i in by_path["/upload"].interventions] == ["addon", "addon"]
    app_side = by_path["/upload"].layers[1]
    assert (b"x-from-addon", b"1") in app_side.scope["headers"]
    assert by_path["/upload"].response_body() == b"got hi (via addon)"


@pytest.mark.parametrize(
    ("files", "args", "problem"),
    [
        (
            {"r.toml": "[[rule]]\nthrottle = 0\n"},
            ["--rules", "r.toml"],
            "throttle is response bytes per second",
        ),
        ({"a.py": "x = 1\n"}, ["-s", "a.py"], "defines none of the hooks"),
        ({}, ["-s", "missing.py"], "does not exist"),
    ],
)
def test_bad_rules_and_addons_are_refused_before_a_server_starts(
    workdir: Path,  # noqa: F811
    files: dict[str, str],
    args: list[str],
    problem: str,
) -> None:
    for name, text in files.items():
        (workdir / name).write_text(text)
    env = {"PYTHONPATH": str(ROOT)}
    for command in (["record", "recapp:app", "-o", "x.json"], ["run", "recapp:app"]):
        done = subprocess.run(
            [sys.executable, "-m", "asgispy", *command, "--app-dir", str(workdir), *args],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode != 0
        assert problem in done.stderr, done.stderr
        assert "Uvicorn running" not in done.stderr
