"""Real server processes for tests: daphne on a free 127.0.0.1 port, against the test database;
a private redis-server; and a TCP proxy a test controls (a load balancer, or a cable to cut).

Tests using them need `django_db(transaction=True)`: the server is another process and sees
only committed rows.
"""

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

from django.conf import settings
from django.db import connection

from tests.support import ROOT
from tools.bench import free_port, procfile_web, stop_process_group, wait_for_port


def test_database_url(port: int | None = None) -> str:
    """The URL of the database this test run uses (pytest-django's test database); `port`
    reaches it through a proxy on that port instead."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    port = port or db["PORT"] or 5432
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{port}/{db['NAME']}"


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DATABASE_URL"] = test_database_url()
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    env.update(extra)
    return env


@contextmanager
def daphne(*args: str, **extra_env: str) -> Iterator[tuple[int, subprocess.Popen]]:
    """A daphne process serving the project (extra command-line `args`, e.g. ping options);
    killed (whatever happens) when the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args,
               "csms.asgi:application"]
    with _process(command, f"daphne-{port}", server_env(**extra_env)) as process:
        wait_for_port(port, process)
        yield port, process


def daphnes(count: int, *args: str,
            **extra_env: str) -> AbstractContextManager[list[tuple[int, subprocess.Popen]]]:
    """`count` daphne processes started at once (start-up is most of a fault test's time)."""
    return _servers(count, "daphne", lambda port: [
        sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *args,
        "csms.asgi:application"], extra_env)


def procfile_webs(count: int,
                  **extra_env: str) -> AbstractContextManager[list[tuple[int, subprocess.Popen]]]:
    """`count` web processes exactly as the Procfile starts them (uvicorn), on free ports."""
    return _servers(count, "web", procfile_web, extra_env)


@contextmanager
def _servers(count: int, name: str, command: Callable[[int], list[str]],
             extra_env: dict[str, str]) -> Iterator[list[tuple[int, subprocess.Popen]]]:
    with ExitStack() as stack:
        servers = []
        for _ in range(count):
            port = free_port()
            servers.append((port, stack.enter_context(
                _process(command(port), f"{name}-{port}", server_env(**extra_env)))))
        for port, process in servers:
            wait_for_port(port, process)
        yield servers


def wait_until(condition: Callable[[], object], seconds: float = 10, what: str = "") -> float:
    """Seconds it took for `condition` (what another process or thread does) to hold; fails
    after `seconds`, saying `what` was awaited."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise AssertionError(f"not true within {seconds} s" + (f": {what}" if what else ""))
        time.sleep(0.05)
    return time.monotonic() - started


def post(port: int, path: str, token: str, body: dict) -> dict:
    """POST JSON to a server process's API with a DRF token; the decoded answer."""
    return post_with_status(port, path, token, body)[1]


def post_with_status(port: int, path: str, token: str, body: dict) -> tuple[int, dict]:
    """The same, with the answer's HTTP status."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, json.loads(response.read())


def kill(process: subprocess.Popen) -> None:
    """SIGKILL, as the kernel's OOM killer or a power cut would: no handler runs."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def _process(command: list[str], name: str, env: dict[str, str]) -> Iterator[subprocess.Popen]:
    log = open(ROOT / f"test-artifacts/{name}.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            stop_process_group(process)
        log.close()


@contextmanager
def celery_worker(seconds: float = 20) -> Iterator[None]:
    """A real worker on the test database (production path only: embedded, tasks run eagerly
    inside daphne), ready within `seconds`."""
    if not settings.REDIS_URL:
        yield
        return
    log_path = ROOT / f"test-artifacts/celery-{uuid.uuid4().hex[:8]}.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "csms", "worker", "--pool", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
        cwd=ROOT, env=server_env(), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        deadline = time.monotonic() + seconds
        while "ready." not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        yield
    finally:
        stop_process_group(process)
        log.close()


REDIS_SERVER = shutil.which("redis-server")


@contextmanager
def redis_server(port: int | None = None) -> Iterator[tuple[int, subprocess.Popen]]:
    """A private, memory-only redis-server on a free port (or `port`, to restart one there)."""
    port = port or free_port()
    command = [REDIS_SERVER or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
               "--save", "", "--appendonly", "no"]
    with _process(command, f"redis-{port}", dict(os.environ)) as process:
        wait_for_port(port, process)
        yield port, process


class Proxy:
    """A TCP proxy on a free 127.0.0.1 port, run on its own thread.

    In front of several server processes it is a load balancer: each new connection goes to the
    first backend that accepts it. In front of PostgreSQL it is a cable a test can `cut()` (every
    connection dropped, new ones refused) and `restore()`. `hold_replies()` keeps the bytes the
    backends send on the open connections from reaching the clients: a reply that is lost on
    the way.
    """

    def __init__(self, *backends: int) -> None:
        self.backends = list(backends)
        self.port = free_port()
        self.refusing = False
        self._pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, dict]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> "Proxy":
        self._thread.start()
        self._run(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def cut(self) -> None:
        self.refusing = True
        self._run(self._drop_all())

    def restore(self) -> None:
        self.refusing = False

    def hold_replies(self) -> None:
        for _, _, state in self._pipes:
            state["hold"] = True

    def _run(self, coroutine) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _drop_all(self) -> None:
        for client, backend, _ in self._pipes:
            client.transport.abort()
            backend.transport.abort()
        self._pipes.clear()

    async def _serve(self, client_in: asyncio.StreamReader,
                     client_out: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_out.transport.abort()
            return
        for port in self.backends:
            try:
                backend_in, backend_out = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        else:
            client_out.transport.abort()
            return
        state = {"hold": False}
        pipe = (client_out, backend_out, state)
        self._pipes.append(pipe)
        await asyncio.gather(self._pump(client_in, backend_out, {"hold": False}),
                             self._pump(backend_in, client_out, state),
                             return_exceptions=True)
        for writer in (client_out, backend_out):
            writer.transport.abort()
        if pipe in self._pipes:
            self._pipes.remove(pipe)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    state: dict) -> None:
        try:
            while data := await reader.read(65536):
                if not state["hold"]:
                    writer.write(data)
                    await writer.drain()
        finally:
            writer.transport.abort()  # one side gone: so is the other, as with a real hop


(ROOT / "test-artifacts").mkdir(exist_ok=True)
