"""The suite's throwaway PostgreSQL (tests/postgres.py and its fixtures in conftest):
real servers, the watcher role's password checked, fresh databases, restarts and crashes
that keep committed data, and PgBouncer pooling by transaction in front."""

from __future__ import annotations

import psycopg
import pytest

from tests.postgres import HOST, PASSWORD, ROLE, PgBouncer, PostgresServer


def user_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return [str(row[0]) for row in rows]


def test_the_watcher_role_logs_in_with_its_password_over_tcp(pg_url: str) -> None:
    """The URL names the watcher role, its password and 127.0.0.1; the database is its own."""
    assert pg_url.startswith(f"postgresql://{ROLE}:{PASSWORD}@{HOST}:")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "SELECT current_user, host(inet_server_addr()), pg_get_userbyid(datdba),"
            " current_setting('password_encryption')"
            " FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row == (ROLE, HOST, ROLE, "scram-sha-256")


def test_a_wrong_password_is_refused(postgres: PostgresServer, pg_url: str) -> None:
    """TCP logins are checked (scram-sha-256), not trusted."""
    database = pg_url.rsplit("/", 1)[1]
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url(database, password="not-the-password"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres.url(database, user="postgres", password="not-the-password"))


def test_each_pg_url_is_a_fresh_empty_database(postgres: PostgresServer, pg_url: str) -> None:
    """Two databases: different, empty, and the watcher role may create tables in both."""
    other = postgres.create_database()
    assert other != pg_url
    assert user_tables(pg_url) == user_tables(other) == []
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE jobs (sref text PRIMARY KEY)")
    assert user_tables(pg_url) == ["jobs"]
    assert user_tables(other) == []


def test_own_postgres_restarts_and_crashes_keeping_committed_data(
    own_postgres: PostgresServer, postgres: PostgresServer
) -> None:
    """A server of the test's own: a restart cuts connections and keeps the data; so
    does a crash (immediate stop), for every commit that returned."""
    assert own_postgres.port != postgres.port
    url = own_postgres.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t VALUES (1)")
        before = own_postgres.pid
        own_postgres.restart()
        assert own_postgres.pid not in (None, before)
        with pytest.raises(psycopg.OperationalError):
            conn.execute("SELECT 1")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO t VALUES (2)")
    own_postgres.stop("immediate")
    assert own_postgres.pid is None
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=5)
    own_postgres.start()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT n FROM t ORDER BY n").fetchall() == [(1,), (2,)]
    with postgres.admin() as conn:  # the session's server was not disturbed
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_pgbouncer_pools_by_transaction(pgbouncer: PgBouncer, postgres: PostgresServer) -> None:
    """Queries go through PgBouncer (its own port, the role's password), and two clients
    share one server connection between transactions: transaction pooling."""
    url = pgbouncer.url()
    assert pgbouncer.port != postgres.port
    assert url.startswith(f"postgresql://{ROLE}:{PASSWORD}@{HOST}:{pgbouncer.port}/")
    with (
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as first,
        psycopg.connect(url, autocommit=True, prepare_threshold=None) as second,
    ):
        (one,) = first.execute("SELECT pg_backend_pid()").fetchall()
        (two,) = second.execute("SELECT pg_backend_pid()").fetchall()
        assert one == two
        with first.transaction():
            first.execute("CREATE TABLE t (n int)")
            first.execute("INSERT INTO t VALUES (%s)", (7,))
        assert second.execute("SELECT n FROM t").fetchall() == [(7,)]
    with pytest.raises(psycopg.OperationalError, match="authentication failed"):
        psycopg.connect(pgbouncer.url(password="not-the-password"))


def test_pgbouncer_url_fixture(pgbouncer_url: str) -> None:
    """The URL to hand to watcher: a query works through it."""
    with psycopg.connect(pgbouncer_url, prepare_threshold=None) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (ROLE,)
