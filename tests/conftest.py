"""Shared fakes for the whole suite: the simulator, a webhook receiver, an SMTP server,
configuration files, throwaway PostgreSQL servers and PgBouncer, and a guard that fails
any test whose output shows a secret."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from aiohttp import web
from aiosmtpd.controller import Controller

from tests.postgres import PASSWORD as PG_PASSWORD
from tests.postgres import SUPERUSER_PASSWORD as PG_SUPERUSER_PASSWORD
from tests.postgres import (
    Installation,
    PgBouncer,
    PostgresServer,
    find_bindir,
    find_pgbouncer,
)
from watcher import logs
from watcher.simulator.runner import SimulatorHandle, running_simulator
from watcher.simulator.tokens import TokenStore
from watcher.simulator.world import World

CLIENT_ID = "client-id-e2e"
CLIENT_SECRET = "client-SECRET-4f9a2c"
HOOK_USER = "hookuser"
HOOK_PASSWORD = "hook-PASS-77c1d0"
REALM = "realm-e2e"
# Secrets that channel URLs carry as plugin arguments: a header, a GET parameter, a field.
HEADER_TOKEN = "hdr-TOKEN-3b9e1f"
HEADER_KEY = "hdr-KEY-8c2d4a"
QUERY_KEY = "qry-KEY-6f1a0b"
FIELD_KEY = "fld-KEY-2e7c9d"
URL_PASSWORD = "url-PASS-91d3e5"  # in an api URL, where credentials are refused
SECRETS: set[str] = {  # grows with every token the simulator issues
    CLIENT_SECRET,
    HOOK_PASSWORD,
    HEADER_TOKEN,
    HEADER_KEY,
    QUERY_KEY,
    FIELD_KEY,
    URL_PASSWORD,
    PG_PASSWORD,
    PG_SUPERUSER_PASSWORD,
}


class _CurrentStdout:
    """A stream that writes to whatever sys.stdout is now (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()

    def isatty(self) -> bool:
        return False


@pytest.fixture(scope="session", autouse=True)
def _logging() -> None:
    logs.configure(fmt="json", level="debug", stream=_CurrentStdout())  # type: ignore[arg-type]
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's chatter


@pytest.fixture
def lenient_umask() -> Iterator[None]:
    """The umask of a login shell (022), inherited by any child: a test of file modes must
    not pass thanks to a strict umask such as systemd's UMask=0077."""
    before = os.umask(0o022)
    yield
    os.umask(before)


def require_tool(name: str, package: str) -> str:
    """The path of a system program the test drives for real. Missing, the test skips
    (a developer's machine), or fails under CI=true: CI must not pass by skipping.
    `tests/run` installs the Debian `package` when it is absent."""
    path = shutil.which(name)
    if path is None:
        missing_tool(name, package)
    return path


def missing_tool(name: str, package: str) -> NoReturn:
    why = f"{name} is not installed (Debian package {package}; tests/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(why)
    pytest.skip(why)


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}"


@pytest.fixture(autouse=True)
def _no_secret_in_output(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    yield
    out, err = capsys.readouterr()
    assert_no_secret(out + err, "the test's output")
    sys.stdout.write(out)
    sys.stderr.write(err)


@pytest.fixture(autouse=True)
def _no_daemon_left() -> Iterator[None]:
    yield
    from tests.e2e import proc  # proc imports this module

    proc.kill_leftovers()


class RecordingTokens(TokenStore):
    def issue(self, ttl: float) -> str:
        token = super().issue(ttl)
        SECRETS.add(token)
        return token


@pytest.fixture
def world() -> World:
    w = World()
    w.tokens = RecordingTokens()
    return w


@pytest.fixture
async def sim(world: World) -> AsyncIterator[SimulatorHandle]:
    async with running_simulator(
        world, realm=REALM, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ) as handle:
        yield handle


@dataclass
class Hook:
    """A local webhook receiver for apprise's json:// plugin."""

    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    down: bool = False
    attempts: int = 0

    @property
    def url(self) -> str:
        return f"json://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:{self.port}/hook"

    def url_with_arguments(self, space: str = "%20") -> str:
        """The hook with its secrets given as apprise plugin arguments: two headers, a GET
        parameter, a payload field. `space` after "Bearer": apprise keeps a "+" a plus."""
        return (
            f"json://127.0.0.1:{self.port}/hook?+Authorization=Bearer{space}{HEADER_TOKEN}"
            f"&+X-Api-Key={HEADER_KEY}&-apikey={QUERY_KEY}&:token={FIELD_KEY}"
        )

    def titles(self) -> list[str]:
        return [str(m["title"]) for m in self.received]


async def serve(app: web.Application) -> tuple[web.AppRunner, int]:
    """Serve `app` on a free loopback port; the caller cleans the runner up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, next(int(a[1]) for a in runner.addresses if isinstance(a, tuple))


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    async with receiving(Hook()) as receiver:
        yield receiver


@contextlib.asynccontextmanager
async def receiving(receiver: Hook) -> AsyncIterator[Hook]:
    """`receiver` served on a free loopback port until the block ends."""

    async def handle(request: web.Request) -> web.Response:
        receiver.attempts += 1
        receiver.headers.append(dict(request.headers))
        if receiver.down:
            return web.Response(status=503, text="down")
        receiver.received.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner, receiver.port = await serve(app)
    try:
        yield receiver
    finally:
        await runner.cleanup()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Mailbox:
    port: int
    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=watcher@example.com&to=oncall@example.com"

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:
        with self.lock:
            self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def job_record(n: int, status: str = "failed") -> dict[str, Any]:
    """Job `n`'s record as the API lists it, every documented field well formed."""
    return {
        "sref": f"jobs/{n}",
        "name": f"Job {n}",
        "status": status,
        "type": "Single",
        "startedAt": "2026-03-29T00:00:00+00:00",
        "updatedAt": "2026-03-29T01:00:00+00:00",
        "pageCount": 1,
        "runType": "manual",
        "jobTemplateUri": "jobTemplates/1",
    }


def config_document(
    sim: SimulatorHandle, tmp_path: Path, channels: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "api": {
            "base_url": sim.base_url,
            "token_url": sim.token_url,
            "realm": REALM,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "timeout": "5s",
            "retries": 2,
        },
        "poll": {"interval": "1s", "lookback": "1h", "overlap": "2m"},
        "state": {"path": str(tmp_path / "state" / "watcher.db")},
        "channels": channels,
        "rules": [
            {
                "name": "failures",
                "match": {"to": ["failed", "expired"]},
                "notify": sorted(channels),
                "title": "{{ job.name }} {{ event.to }}",
                "body": "{{ job.sref }} was {{ event.from }}",
            }
        ],
        "delivery": {"group_wait": "0s", "retry_initial": "0.2s", "retry_max": "1s"},
        "server": {"listen": ""},
        "shutdown_timeout": "5s",
    }
    return deep_merge(base, overrides)


def write_config(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


# --- PostgreSQL and PgBouncer (tests/postgres.py) --------------------------------------


@pytest.fixture(scope="session")
def postgres_installation() -> Iterator[Installation]:
    """The PostgreSQL server programs (skip, or fail under CI=true, when absent) and the
    session's pristine cluster that every server starts from."""
    bindir = find_bindir()
    if bindir is None:
        missing_tool("initdb", "postgresql")
    installation = Installation(bindir)
    yield installation
    installation.cleanup()


@pytest.fixture(scope="session")
def postgres(postgres_installation: Installation) -> Iterator[PostgresServer]:
    """The session's PostgreSQL server, started at the first test that asks. Shared: a test
    that stops or restarts a server takes `own_postgres` instead."""
    server = PostgresServer(postgres_installation, synchronous_commit=False)  # none crash it
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh empty database on the session server, owned by the watcher role: its URL
    (postgresql://watcher:PASSWORD@127.0.0.1:PORT/NAME), dropped after the test."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture
def own_postgres(
    postgres_installation: Installation,
) -> Iterator[PostgresServer]:
    """A server of the test's own, to stop, restart or crash without disturbing others."""
    server = PostgresServer(postgres_installation)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def pgbouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    """A real PgBouncer (pool_mode = transaction) in front of the session server, for a
    fresh database; `pgbouncer.url()` is the URL to give watcher."""
    binary = find_pgbouncer()
    if binary is None:
        missing_tool("pgbouncer", "pgbouncer")
    database = postgres.create_database().rsplit("/", 1)[1]
    bouncer = PgBouncer(binary, postgres, database)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.cleanup()
        postgres.drop_database(database)


@pytest.fixture
def pgbouncer_url(pgbouncer: PgBouncer) -> str:
    return pgbouncer.url()
