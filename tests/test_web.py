"""``--web``: the dashboard served to a browser, run as a user runs it.

Each test starts the real ``asgispy`` command line as a subprocess on 127.0.0.1, fetches the page
over HTTP and opens textual-serve's WebSocket as its page does (``/ws``, JSON ``stdin`` and
``resize`` messages in, the dashboard's terminal output as binary frames out), reading until the
dashboard shows what was recorded. Where Chromium and Playwright are installed, a real browser
loads the page too. Every process is stopped as Ctrl-C stops it, and none may be left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

import asgispy
from tests.servers import serve

pytest.importorskip("textual_serve")

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent

APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"seen " + scope["path"].encode()})
"""

#: Control sequences of the dashboard's terminal output: what remains is the text on screen.
ESCAPES = re.compile(r"\x1b\[[0-9;:?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>78]|\x1b\][^\x07]*\x07")


def plain_app() -> Any:
    namespace: dict[str, Any] = {}
    exec(APP, namespace)
    return namespace["app"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid``, from /proc (the served app is in a session of its own)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def left_behind(pids: set[int], timeout: float = 10) -> list[int]:
    """The processes of ``pids`` still running after ``timeout``: orphans."""
    deadline = time.monotonic() + timeout
    while (running := [pid for pid in pids if alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    if running:
        print({pid: _command_line(pid) for pid in running})
    return running


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Web:
    """``python -m asgispy ARGS`` serving a dashboard to browsers on ``port``."""

    def __init__(self, args: list[str], port: int, cwd: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}/"
        self.errors = cwd / f"web-{port}.err"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        with self.errors.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "asgispy", *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                start_new_session=True,  # a group of its own, as a terminal's Ctrl-C sees it
            )
        self.seen: set[int] = set()

    def output(self) -> str:
        return self.errors.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.output()
            if "the dashboard is at" in self.output():
                with contextlib.suppress(httpx.HTTPError):
                    page = httpx.get(self.url, timeout=5, trust_env=False)
                    if page.status_code == 200:
                        return page.text
            time.sleep(0.1)
        raise AssertionError(f"the web dashboard did not come up:\n{self.output()}")

    def note_processes(self) -> None:
        self.seen |= descendants(self.process.pid)

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole foreground group."""
        self.note_processes()
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout)

    def kill(self) -> None:
        for pid in [self.process.pid, *self.seen, *descendants(self.process.pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)


@contextlib.contextmanager
def web(args: list[str], cwd: Path) -> Iterator[Web]:
    port = free_port()
    server = Web([*args, "--web-port", str(port)], port, cwd)
    try:
        yield server
    finally:
        server.kill()


class Tab:
    """One browser tab's WebSocket: what the page's script sends and receives."""

    def __init__(self, server: Web, width: int = 160, height: int = 45) -> None:
        self._connecting = ws_connect(
            f"ws://127.0.0.1:{server.port}/ws?width={width}&height={height}", open_timeout=10
        )
        self.ws: ClientConnection = self._connecting.__enter__()
        self.ws.send(json.dumps(["resize", {"width": width, "height": height}]))
        self.screen = ""
        self.closed = False

    def text(self) -> str:
        return ESCAPES.sub("", self.screen)

    def until(self, *wanted: str, timeout: float = 30) -> str:
        """Read the dashboard's output until every one of ``wanted`` has been drawn."""
        deadline = time.monotonic() + timeout
        while not all(w in self.text() for w in wanted):
            left = deadline - time.monotonic()
            assert left > 0 and not self.closed, f"never drawn: {wanted}; drawn:\n{self.text()[-3000:]}"
            try:
                frame = self.ws.recv(timeout=min(left, 1.0))
            except TimeoutError:
                continue
            except Exception:
                self.closed = True
                continue
            if isinstance(frame, bytes):
                self.screen += frame.decode("utf-8", "replace")
        return self.text()

    def press(self, keys: str) -> None:
        self.ws.send(json.dumps(["stdin", keys]))

    def wait_closed(self, timeout: float = 20) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.ws.recv(timeout=1)
            except TimeoutError:
                continue
            except Exception:
                return True
        return False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._connecting.__exit__(None, None, None)


@pytest.fixture(scope="module")
def session_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session recorded from a real uvicorn: two requests with paths to look for on screen."""
    spy = asgispy.Spy(plain_app())
    with (
        serve(spy, lifespan="on") as server,
        httpx.Client(base_url=server.base_url, trust_env=False) as client,
    ):
        assert client.get("/orders/web-41").status_code == 200
        assert client.post("/basket/items", content=b"{}").status_code == 200
    path = tmp_path_factory.mktemp("web") / "recorded.json"
    spy.export(path)
    return path


def test_open_web_serves_the_saved_session_to_every_tab(session_file: Path, tmp_path: Path) -> None:
    with web(["open", str(session_file), "--web"], tmp_path) as server:
        page = server.wait_ready()
        assert "asgispy open recorded.json" in page  # the page's title
        assert "/ws" in page and "textual.js" in page
        first, second = Tab(server), Tab(server)  # a saved file: each tab a dashboard of its own
        try:
            assert "/orders/web-41" in first.until("/orders/web-41", "/basket/items")
            second.until("/orders/web-41")
            server.note_processes()
            assert len(server.seen) >= 2  # one dashboard process per tab
            first.close()
            # Ctrl-C with a tab still open: its dashboard is told to quit, the tab sees the end.
            assert server.interrupt() == 0
            assert second.wait_closed()
        finally:
            first.close()
            second.close()
        assert not left_behind(server.seen)


def test_run_web_serves_the_app_once_and_tabs_see_its_traffic(tmp_path: Path) -> None:
    (tmp_path / "webapp.py").write_text(APP)
    app_port = free_port()
    args = ["run", "webapp:app", "--port", str(app_port), "--break", "path:/held/*", "--web"]
    with web(args, tmp_path) as server, httpx.Client(trust_env=False, timeout=20) as client:
        assert "asgispy run webapp:app" in server.wait_ready()
        app_url = f"http://127.0.0.1:{app_port}"
        deadline = time.monotonic() + 30
        while "Uvicorn running on" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
        assert client.get(f"{app_url}/before/any-tab").text == "seen /before/any-tab"

        # A tab opened after the request still sees it: the app hands its recent history over.
        tab = Tab(server)
        try:
            tab.until("/before/any-tab")
            assert client.get(f"{app_url}/while/watching").status_code == 200
            tab.until("/while/watching")

            # Breakpoints work as under `asgispy run`: held until the tab says go (h, then Ctrl-S).
            answer: list[httpx.Response] = []
            asking = threading.Thread(target=lambda: answer.append(client.get(f"{app_url}/held/one")))
            asking.start()
            tab.until("1 HELD")
            assert not answer
            tab.press("h")
            tab.until("Send / resume")
            tab.press("\x13")  # Ctrl-S: send it on
            asking.join(20)
            assert answer and answer[0].text == "seen /held/one"

            # One app, one live tab: a newer tab takes over, with the traffic so far.
            newer = Tab(server)
            try:
                newer.until("/before/any-tab", "/while/watching", "/held/one")
                assert tab.wait_closed()
                server.note_processes()
            finally:
                newer.close()
        finally:
            tab.close()
        served = [pid for pid in server.seen if "asgispy.cli.serving" in _command_line(pid)]
        assert len(served) == 1  # the app was served once, not once per tab
        assert "ASGISPY_INTERCEPT=1" in _environment(served[0])
        assert server.interrupt() == 0
        output = server.output()
        assert "Application shutdown complete" in output  # the app was stopped, not killed
        assert not left_behind(server.seen)


def _command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


def _environment(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
    return []


def test_attach_web_shows_apps_that_use_spy(tmp_path: Path) -> None:
    address = f"unix:{tmp_path / 'attach.sock'}"
    with web(["attach", "--listen", address, "--web"], tmp_path) as server:
        server.wait_ready()
        tab = Tab(server)
        try:
            tab.until("attach")
            spy = asgispy.Spy(plain_app(), address=address)
            with serve(spy) as app, httpx.Client(base_url=app.base_url, trust_env=False) as client:
                assert client.get("/attached/seen").status_code == 200
                tab.until("/attached/seen")
        finally:
            tab.close()
        assert server.interrupt() == 0


def test_web_refuses_what_it_cannot_serve(tmp_path: Path, session_file: Path) -> None:
    def asgispy_cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "asgispy", *args], capture_output=True, text=True, env=env, timeout=60
        )

    missing = asgispy_cli("open", str(tmp_path / "nope.json"), "--web")
    assert missing.returncode == 2 and "nope.json: no such file" in missing.stderr
    (tmp_path / "not-a-session.json").write_text('{"hello": "world"}')
    broken = asgispy_cli("open", str(tmp_path / "not-a-session.json"), "--web")
    assert broken.returncode == 2 and "not-a-session.json" in broken.stderr
    assert "Traceback" not in broken.stderr
    jsonl = asgispy_cli("attach", "--web", "--jsonl", str(tmp_path / "x.jsonl"))
    assert jsonl.returncode == 2 and "asgispy record" in jsonl.stderr
    stray = asgispy_cli("open", str(session_file), "--port", "8123")
    assert stray.returncode == 2 and "--web" in stray.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = asgispy_cli("open", str(session_file), "--web", "--port", str(taken.getsockname()[1]))
    assert busy.returncode == 1 and "cannot serve the dashboard" in busy.stderr
    assert "Traceback" not in busy.stderr


def test_a_host_beyond_loopback_is_warned_about(session_file: Path) -> None:
    # 192.0.2.1 is a documentation address, on no machine: the warning, then a clear refusal.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "asgispy", "open", str(session_file), "--web", "--host", "192.0.2.1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert "warning: serving on 192.0.2.1, beyond this machine" in result.stderr
    assert result.returncode == 1 and "cannot serve the dashboard on 192.0.2.1" in result.stderr
    assert "Traceback" not in result.stderr


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_a_real_browser_shows_the_dashboard(session_file: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("no Chromium on this machine")
    with web(["open", str(session_file), "--web"], tmp_path) as server:
        server.wait_ready()
        frames: list[str] = []

        def on_websocket(ws: object) -> None:
            def received(payload: object) -> None:
                if isinstance(payload, bytes):
                    frames.append(payload.decode("utf-8", "replace"))

            ws.on("framereceived", received)  # type: ignore[attr-defined]

        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                # Only loopback: the page's web font from the internet is refused, not fetched.
                page.route(re.compile(r"^(?!http://127\.0\.0\.1[:/]).*"), lambda route: route.abort())
                page.on("websocket", on_websocket)
                page.goto(server.url, timeout=30_000)
                assert "asgispy open recorded.json" in page.content()

                def drawn(text: str) -> None:
                    deadline = time.monotonic() + 30
                    while text not in ESCAPES.sub("", "".join(frames)):
                        assert time.monotonic() < deadline, f"the browser never received {text!r}"
                        page.wait_for_timeout(200)

                drawn("/orders/web-41")
                # The page types into the dashboard: ? opens its help screen.
                frames.clear()
                page.locator("#terminal").click()
                page.keyboard.press("?")
                drawn("asgispy dashboard")
                terminal = page.locator("#terminal")
                assert terminal.is_visible()
                box = terminal.bounding_box()
                assert box is not None and box["width"] > 600  # xterm filled the page
                page.screenshot(path=str(tmp_path / "dashboard.png"))
            finally:
                browser.close()
        assert server.interrupt() == 0


def test_demo_web_gives_each_tab_a_demo_of_its_own(tmp_path: Path) -> None:
    with web(["demo", "--web", "--delay", "0.05"], tmp_path) as server:
        server.wait_ready()
        tab = Tab(server)
        try:
            tab.until("/api/quote", timeout=60)  # the demo's traffic, on the tab's own demo app
            server.note_processes()
        finally:
            tab.close()
        assert server.interrupt() == 0
        assert not left_behind(server.seen)


def test_without_textual_serve_the_user_is_told_what_to_install(tmp_path: Path, session_file: Path) -> None:
    # A textual_serve that cannot be imported, ahead of the installed one: as on a machine without it.
    (tmp_path / "textual_serve").mkdir()
    (tmp_path / "textual_serve" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "asgispy", "open", str(session_file), "--web"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "pip install 'asgispy[web]'" in result.stderr and "Traceback" not in result.stderr
