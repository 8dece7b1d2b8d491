"""Throwaway PostgreSQL servers and PgBouncer for the tests, run for real.

A cluster lives in its own temporary folder (data, Unix socket, log; in /dev/shm when
there is one) and listens on 127.0.0.1 at a free port, with fsync off. PostgreSQL and
PgBouncer refuse to run as root: as root, the folder belongs to the `postgres` system
user and every server command runs through `runuser -u postgres --`.

Roles: the superuser `postgres` (trusted over the Unix socket, which the fixtures use
for administration) and the login role `watcher` with `PASSWORD`, checked with
SCRAM-SHA-256 over TCP, which is how the tests connect. `initdb` runs once a session
(`Installation.template`); each server starts from a copy of that cluster.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

if TYPE_CHECKING:
    import psycopg

HOST = "127.0.0.1"
ROLE = "watcher"
PASSWORD = "pg-watcher-PASS-5e8b21"  # the watcher role's; in conftest's SECRETS
SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "pg-super-PASS-c47a90"  # for TCP logins only; unused by the fixtures
OWNER = "postgres"  # the system user that runs the servers when the tests run as root
START_TIMEOUT = 30.0
# Throwaway speed: nothing survives a crash of the machine, and nothing needs to. Both
# settings matter only when the kernel loses its buffers, never when the server crashes.
FAST = ("-c", "fsync=off", "-c", "full_page_writes=off")

StopMode = Literal["smart", "fast", "immediate"]


class PostgresError(RuntimeError):
    """A server command failed; the message carries its output and the server's log."""


def find_bindir() -> Path | None:
    """The folder of `initdb`, `pg_ctl` and `postgres`: the one on PATH (symlinks
    resolved), else the newest Debian `/usr/lib/postgresql/<major>/bin`."""
    names = ("initdb", "pg_ctl", "postgres")
    found = [shutil.which(name) for name in names]
    if all(found):
        folder = Path(str(found[1])).resolve().parent
        if all((folder / name).exists() for name in names):
            return folder
    candidates = []
    for folder in Path("/usr/lib/postgresql").glob("*/bin"):
        if folder.parent.name.isdigit() and all((folder / n).exists() for n in names):
            candidates.append((int(folder.parent.name), folder))
    return max(candidates)[1] if candidates else None


def find_pgbouncer() -> str | None:
    """PgBouncer on PATH, or where Debian puts it (/usr/sbin is not on a user's PATH)."""
    found = shutil.which("pgbouncer")
    if found is None and os.access("/usr/sbin/pgbouncer", os.X_OK):
        found = "/usr/sbin/pgbouncer"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    """This environment without the PG* variables that would steer the server tools."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


class Installation:
    """The server programs, who runs them, and the session's pristine cluster."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.owner = _system_user() if os.geteuid() == 0 else None
        self._template: Path | None = None
        self._folders: list[Path] = []

    def command(self, *args: str | Path) -> list[str]:
        """`args`, run as the owner when the tests run as root."""
        argv = [str(a) for a in args]
        if self.owner is None:
            return argv
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", OWNER, "--", *argv]

    def run(self, *args: str | Path, cwd: Path, log: Path | None = None) -> str:
        result = subprocess.run(
            self.command(*args),
            cwd=cwd,
            env=_env(),
            capture_output=True,
            text=True,
            errors="replace",
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            tail = log.read_text("utf-8", "replace")[-4000:] if log and log.exists() else ""
            shown = " ".join(str(a) for a in args)
            raise PostgresError(f"{shown} failed ({result.returncode}):\n{output}\n{tail}")
        return output

    def folder(self, prefix: str) -> Path:
        """A new temporary folder that the owner can write (0700), in memory when it can
        be: on this disk, CREATE DATABASE takes 250 ms, and 30 ms in /dev/shm."""
        shm = "/dev/shm"  # noqa: S108  (a private folder made in it by mkdtemp)
        base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None
        folder = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
        if self.owner is not None:
            os.chown(folder, self.owner.pw_uid, self.owner.pw_gid)
        self._folders.append(folder)
        return folder

    def write(self, path: Path, text: str) -> Path:
        """Write an owner-only file for the server programs to read."""
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        if self.owner is not None:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)
        return path

    def template(self) -> Path:
        """A freshly initialised data folder, made once; servers start from copies."""
        if self._template is None:
            folder = self.folder("watcher-pg-template-")
            password = self.write(folder / "superuser-password", SUPERUSER_PASSWORD + "\n")
            data = folder / "data"
            self.run(
                self.bindir / "initdb",
                "--pgdata",
                data,
                "--username",
                SUPERUSER,
                "--pwfile",
                password,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
                cwd=folder,
            )
            password.unlink()
            self._template = data
        return self._template

    def cleanup(self) -> None:
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()
        self._template = None


def _system_user() -> pwd.struct_passwd:
    """The `postgres` system user (Debian's package makes it), made when absent."""
    try:
        return pwd.getpwnam(OWNER)
    except KeyError:
        useradd = ["useradd", "--system", "--user-group", "--no-create-home"]
        useradd += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", OWNER]
        subprocess.run(useradd, check=True, capture_output=True)
        return pwd.getpwnam(OWNER)


class PostgresServer:
    """One throwaway cluster: `start()`, `url(database)`, `create_database()`, `restart()`,
    `stop()`, `cleanup()`. Its folder holds `data/`, the Unix socket and `server.log`."""

    durability: tuple[str, ...] = FAST  # server settings for a crash of the machine

    def __init__(
        self,
        installation: Installation,
        *,
        max_connections: int = 200,
        synchronous_commit: bool = True,
    ) -> None:
        """`synchronous_commit=False` is faster but may lose the last commits when the
        server crashes (`stop("immediate")`, a kill): only for a server nobody crashes."""
        self.installation = installation
        self.max_connections = max_connections
        self.synchronous_commit = synchronous_commit
        self.folder = installation.folder("watcher-pg-")
        self.data = self.folder / "data"
        self.log_path = self.folder / "server.log"
        self.port = 0
        self._numbers = itertools.count(1)
        self._ready = False

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the server (the first time: from the template, with the watcher role),
        waiting until it accepts connections. Its port stays the same across restarts."""
        if not self.data.exists():
            self._copy_template()
        for attempt in range(3):
            if not self.port:
                self.port = free_port()
            try:
                self._pg_ctl("start", "-o", self._options())
                break
            except PostgresError:
                if attempt == 2 or "could not bind" not in self.log():
                    raise
                self.port = 0  # someone took the port between the probe and the bind
        if not self._ready:
            with self.admin() as conn:
                conn.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            self._ready = True

    def stop(self, mode: StopMode = "fast") -> None:
        """`pg_ctl stop -m MODE`: `immediate` is a crash (recovery at the next start)."""
        self._pg_ctl("stop", "-m", mode)

    def restart(self, mode: StopMode = "fast") -> None:
        """`pg_ctl restart -m fast`: every connection is cut; the data persists."""
        self._pg_ctl("restart", "-m", mode, "-o", self._options())

    def cleanup(self) -> None:
        """Stop at once if running and remove the folder."""
        if self.pid is not None:
            with contextlib.suppress(PostgresError):
                self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs, else None."""
        try:
            pid = int((self.data / "postmaster.pid").read_text("utf-8").split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # a stale file: the postmaster was killed
        except PermissionError:
            pass  # alive, someone else's
        return pid

    def signal(self, sig: signal.Signals) -> None:
        """Signal the postmaster (SIGKILL: a crash; SIGSTOP: new connections hang)."""
        pid = self.pid
        assert pid is not None, "the server is not running"
        os.kill(pid, sig)

    def log(self) -> str:
        """The server's log so far (for a failing test's message)."""
        try:
            return self.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:
            return ""

    # --- databases and connections -----------------------------------------------------

    def url(self, database: str, *, user: str = ROLE, password: str | None = PASSWORD) -> str:
        """A postgresql:// URL for `database` on 127.0.0.1:port (TCP, SCRAM)."""
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{HOST}:{self.port}/{quote(database, safe='')}"

    def create_database(self) -> str:
        """A new empty database owned by the watcher role; its URL."""
        name = f"watcher_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} OWNER {ROLE}")
        return self.url(name)

    def drop_database(self, url_or_name: str) -> None:
        """Drop a database (given by name or URL), cutting its connections."""
        name = url_or_name.rsplit("/", 1)[-1]
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def admin(self, database: str = "postgres") -> Iterator[psycopg.Connection[Any]]:
        """A superuser connection over the Unix socket, in autocommit."""
        import psycopg  # imported here: conftest imports this module for every test

        with psycopg.connect(
            host=str(self.folder),
            port=self.port,
            user=SUPERUSER,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        ) as conn:
            yield conn

    # --- internals ---------------------------------------------------------------------

    def _copy_template(self) -> None:
        template = self.installation.template()
        # cp -a keeps the owner and the 0700 modes the server insists on.
        subprocess.run(["cp", "-a", str(template), str(self.data)], check=True)

    def _options(self) -> str:
        settings = (
            "-c", f"listen_addresses={HOST}",
            "-p", str(self.port),
            "-k", str(self.folder),
            "-c", f"max_connections={self.max_connections}",
            "-c", f"synchronous_commit={'on' if self.synchronous_commit else 'off'}",
            *self.durability,
        )  # fmt: skip
        return " ".join(settings)

    def _pg_ctl(self, action: str, *args: str) -> None:
        self.installation.run(
            self.installation.bindir / "pg_ctl",
            action,
            "--pgdata",
            self.data,
            "--log",
            self.log_path,
            "--wait",
            f"--timeout={int(START_TIMEOUT)}",
            *args,
            cwd=self.folder,
            log=self.log_path,
        )


class PgBouncer:
    """A real PgBouncer in front of `server`, for one database, in `pool_mode`
    (transaction by default), authenticating the watcher role with SCRAM."""

    def __init__(
        self,
        binary: str,
        server: PostgresServer,
        database: str,
        *,
        pool_mode: str = "transaction",
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.binary = binary
        self.server = server
        self.database = database
        self.pool_mode = pool_mode
        self.settings = dict(settings or {})
        self.folder = server.installation.folder("watcher-pgbouncer-")
        self.log_path = self.folder / "pgbouncer.log"
        self.pid_path = self.folder / "pgbouncer.pid"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, *, user: str = ROLE, password: str | None = PASSWORD) -> str:
        auth = quote(user, safe="")
        if password is not None:
            auth += ":" + quote(password, safe="")
        return f"postgresql://{auth}@{HOST}:{self.port}/{quote(self.database, safe='')}"

    def start(self) -> None:
        """Start PgBouncer and wait until it accepts connections."""
        installation = self.server.installation
        users = installation.write(self.folder / "userlist.txt", f'"{ROLE}" "{PASSWORD}"\n')
        settings = {
            "listen_addr": HOST,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(users),
            "pool_mode": self.pool_mode,
            "logfile": str(self.log_path),
            "pidfile": str(self.pid_path),
            "max_client_conn": "200",
            "default_pool_size": "20",
            **self.settings,
        }
        target = f"host={HOST} port={self.server.port} dbname={self.database}"
        text = "[databases]\n" + f"{self.database} = {target}\n" + "[pgbouncer]\n"
        text += "".join(f"{key} = {value}\n" for key, value in settings.items())
        config = installation.write(self.folder / "pgbouncer.ini", text)
        with (self.folder / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                installation.command(self.binary, config),
                cwd=self.folder,
                env=_env(),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self._accepts():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise PostgresError(f"pgbouncer did not start:\n{self.log()}")
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        """PgBouncer's own process id (not runuser's) while it runs, else None."""
        if self._process is None or self._process.poll() is not None:
            return None
        try:
            return int(self.pid_path.read_text("utf-8").strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop at once (SIGTERM: PgBouncer's immediate shutdown)."""
        pid = self.pid
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Signalled itself, runuser would wait 2 s before it kills its child: signal
        # PgBouncer, and runuser ends with it.
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        else:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def log(self) -> str:
        parts = []
        for path in (self.log_path, self.folder / "stderr.log"):
            with contextlib.suppress(FileNotFoundError):
                parts.append(path.read_text("utf-8", "replace"))
        return "\n".join(parts)

    def _accepts(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex((HOST, self.port)) == 0
