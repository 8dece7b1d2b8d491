"""The PostgreSQL state's schema, one migration per version, as for SQLite (`schema`):
moved forward one version at a time, never backward, by whichever replica starts
first, under a transaction-scoped advisory lock (PgBouncer-safe: it ends with the
transaction), so replicas starting together do not race.

Times are seconds since the epoch, as in the SQLite store, by the watcher's clock (the
API's); only leases and delivery claims go by the database's clock, which every
replica shares.
"""

PG_SCHEMA_VERSION = 5
MIGRATION_LOCK = 7_406_524_180  # the advisory lock key of schema migrations ("watcher")
TABLES = (
    "meta",
    "jobs",
    "events",
    "templates",
    "outbox",
    "leases",
    "replicas",
    "silences",
    "acks",
    "alert_steps",
    "series",
    "lookups",
    "reruns",
)
PG_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        account TEXT NOT NULL,
        sref TEXT NOT NULL,
        status TEXT NOT NULL,
        status_since DOUBLE PRECISION NOT NULL,
        first_seen DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION,
        started_at DOUBLE PRECISION,
        template TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        ended BOOLEAN NOT NULL,
        followed BOOLEAN NOT NULL DEFAULT TRUE,
        PRIMARY KEY (account, sref)
    );
    CREATE INDEX jobs_open ON jobs (account) WHERE NOT ended AND followed;
    CREATE INDEX jobs_first_seen ON jobs (account, first_seen);
    CREATE TABLE events (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        sref TEXT NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        recorded_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account, key)
    );
    CREATE INDEX events_recorded ON events (recorded_at);
    CREATE TABLE templates (
        account TEXT NOT NULL,
        template TEXT NOT NULL,
        watching_since DOUBLE PRECISION NOT NULL,
        streak INTEGER NOT NULL DEFAULT 0,
        last_start DOUBLE PRECISION,
        last_name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (account, template)
    );
    CREATE TABLE outbox (
        id BIGSERIAL PRIMARY KEY,
        account TEXT NOT NULL,
        event_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        channel TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        sref TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at DOUBLE PRECISION NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT '',
        done_targets TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL,
        template TEXT NOT NULL DEFAULT '',
        resolvable BOOLEAN NOT NULL DEFAULT FALSE,
        held BOOLEAN NOT NULL DEFAULT FALSE,
        done_at DOUBLE PRECISION,
        vars TEXT NOT NULL DEFAULT '',
        title_source TEXT,
        body_source TEXT,
        status TEXT NOT NULL DEFAULT '',
        seq INTEGER NOT NULL DEFAULT 0,
        claimed_by TEXT,
        claim_until DOUBLE PRECISION  -- the database's clock
    );
    CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_given_up ON outbox (id) WHERE state = 'given_up';
    CREATE INDEX outbox_created ON outbox (created_at);
    CREATE TABLE leases (
        account TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        expires_at TIMESTAMPTZ NOT NULL
    );
    CREATE TABLE replicas (name TEXT PRIMARY KEY, seen_until TIMESTAMPTZ NOT NULL);
    """,
    # People answer back: silences, acknowledgements, and each step of an alert's life
    # after it was queued; a requeued alert's give-up clock starts from `requeued_at`.
    2: """
    CREATE TABLE silences (
        id BIGSERIAL PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at DOUBLE PRECISION NOT NULL,
        ends_at DOUBLE PRECISION NOT NULL,
        author TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        expired_at DOUBLE PRECISION
    );
    CREATE TABLE acks (
        id BIGSERIAL PRIMARY KEY,
        account TEXT NOT NULL,
        job TEXT NOT NULL DEFAULT '',
        template TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        streak INTEGER NOT NULL DEFAULT 0,
        last_start DOUBLE PRECISION,
        author TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at DOUBLE PRECISION NOT NULL,
        expired_at DOUBLE PRECISION
    );
    CREATE TABLE alert_steps (
        alert_id BIGINT NOT NULL,
        at DOUBLE PRECISION NOT NULL,
        what TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX alert_steps_alert ON alert_steps (alert_id);
    CREATE INDEX alert_steps_at ON alert_steps (at);
    ALTER TABLE outbox ADD COLUMN requeued_at DOUBLE PRECISION;
    """,
    # Regressions: the series' statistics and the completed jobs waiting for a lookup
    # (as in the SQLite schema's version 7).
    3: """
    CREATE TABLE series (
        account TEXT NOT NULL,
        template TEXT NOT NULL,
        page TEXT NOT NULL,
        browser TEXT NOT NULL,
        metric TEXT NOT NULL,
        state TEXT NOT NULL,
        regressions INTEGER NOT NULL DEFAULT 0,
        updated_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (account, template, page, browser, metric)
    );
    CREATE INDEX series_updated ON series (updated_at);
    CREATE TABLE lookups (
        account TEXT NOT NULL,
        sref TEXT NOT NULL,
        job TEXT NOT NULL,
        started_at DOUBLE PRECISION,
        queued_at DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, sref)
    );
    """,
    # The flake filter (as in the SQLite schema's version 8).
    4: """
    CREATE TABLE reruns (
        account TEXT NOT NULL,
        failed TEXT NOT NULL,
        template TEXT NOT NULL,
        job TEXT NOT NULL,
        rules TEXT NOT NULL,
        state TEXT NOT NULL,
        decided_at DOUBLE PRECISION NOT NULL,
        due_at DOUBLE PRECISION NOT NULL,
        deadline DOUBLE PRECISION NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        claimed_at DOUBLE PRECISION,
        rerun TEXT NOT NULL DEFAULT '',
        rerun_status TEXT NOT NULL DEFAULT '',
        last_error TEXT NOT NULL DEFAULT '',
        ended_at DOUBLE PRECISION,
        PRIMARY KEY (account, failed)
    );
    CREATE INDEX reruns_open ON reruns (account, state);
    CREATE INDEX outbox_waiting ON outbox (account, sref) WHERE state = 'waiting';
    """,
    # As in the SQLite schema's version 9.
    5: """
    ALTER TABLE events ADD COLUMN template TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN lasted DOUBLE PRECISION;
    """,
}
