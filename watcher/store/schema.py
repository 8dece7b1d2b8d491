"""The state file's schema, one migration per version; a file is moved forward one
version at a time and never backward."""

SCHEMA_VERSION = 9
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE jobs (
        sref TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        status_since REAL NOT NULL,
        first_seen REAL NOT NULL,
        updated_at REAL,
        started_at REAL,
        template TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        ended INTEGER NOT NULL,
        followed INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX jobs_open ON jobs (sref) WHERE ended = 0 AND followed = 1;
    CREATE INDEX jobs_started ON jobs (started_at);
    CREATE TABLE events (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        sref TEXT NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        at REAL NOT NULL,
        recorded_at REAL NOT NULL
    );
    CREATE INDEX events_recorded ON events (recorded_at);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        event_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        channel TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        sref TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT '',
        done_targets TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'transition',
        template TEXT NOT NULL DEFAULT '',
        resolvable INTEGER NOT NULL DEFAULT 0,
        held INTEGER NOT NULL DEFAULT 0,
        done_at REAL,
        UNIQUE (event_key, rule, channel)
    );
    CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_given_up ON outbox (id) WHERE state = 'given_up';
    CREATE TABLE templates (
        template TEXT PRIMARY KEY,
        watching_since REAL NOT NULL,
        streak INTEGER NOT NULL DEFAULT 0,
        last_start REAL,
        last_name TEXT NOT NULL DEFAULT ''
    );
    """,
    # Alerts are rendered when sent: the outbox keeps the template variables of the event
    # and the rule's templates (NULL: the default). Older rows keep their rendered text.
    2: """
    ALTER TABLE outbox ADD COLUMN vars TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN title_source TEXT;
    ALTER TABLE outbox ADD COLUMN body_source TEXT;
    """,
    # A first cycle writes a row per job of its window and tens of thousands of alerts:
    # a fifth of its write time went to an index of jobs by start (rows come in random
    # order of it) and to the outbox's unique key and AUTOINCREMENT. Old rows are now
    # found by when they were first written (appended in that order, so cheap to index);
    # an alert is queued once by the commit that records its event (see
    # SqliteStore.commit_cycle), not by a unique index.
    3: """
    DROP INDEX IF EXISTS jobs_started;
    CREATE INDEX jobs_first_seen ON jobs (first_seen);
    CREATE TABLE outbox_v3 (
        id INTEGER PRIMARY KEY,
        event_key TEXT NOT NULL,
        rule TEXT NOT NULL,
        channel TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        sref TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        last_error TEXT NOT NULL DEFAULT '',
        done_targets TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'transition',
        template TEXT NOT NULL DEFAULT '',
        resolvable INTEGER NOT NULL DEFAULT 0,
        held INTEGER NOT NULL DEFAULT 0,
        done_at REAL,
        vars TEXT NOT NULL DEFAULT '',
        title_source TEXT,
        body_source TEXT
    );
    INSERT INTO outbox_v3 SELECT id, event_key, rule, channel, severity, title, body, sref,
        created_at, attempts, next_attempt_at, state, last_error, done_targets, kind, template,
        resolvable, held, done_at, vars, title_source, body_source FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v3 RENAME TO outbox;
    CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE state = 'pending';
    CREATE INDEX outbox_given_up ON outbox (id) WHERE state = 'given_up';
    CREATE INDEX outbox_created ON outbox (created_at);
    """,
    # An alert carries its event's identity as fields (the new status, the reminder or
    # gap number), so nothing reads them out of the key. Older rows take the status from
    # their event where it is still recorded; their reminder number is unknown (0).
    4: """
    ALTER TABLE outbox ADD COLUMN status TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE outbox SET status = COALESCE(
        (SELECT to_status FROM events WHERE events.key = outbox.event_key), '');
    """,  # Several accounts share one state: a job, a template and an event are the account's
    # own (a job id is unique within an account only). Rows of an older file belong to
    # the account of a configuration without `accounts:`, "default"; its watermark too
    # (`meta` keys `watermark` for it, `watermark/<account>` for the others).
    5: """
    CREATE TABLE jobs_v5 (
        account TEXT NOT NULL DEFAULT 'default',
        sref TEXT NOT NULL,
        status TEXT NOT NULL,
        status_since REAL NOT NULL,
        first_seen REAL NOT NULL,
        updated_at REAL,
        started_at REAL,
        template TEXT NOT NULL DEFAULT '',
        name TEXT NOT NULL DEFAULT '',
        ended INTEGER NOT NULL,
        followed INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (account, sref)
    );
    INSERT INTO jobs_v5 SELECT 'default', sref, status, status_since, first_seen, updated_at,
        started_at, template, name, ended, followed FROM jobs ORDER BY rowid;
    DROP TABLE jobs;
    ALTER TABLE jobs_v5 RENAME TO jobs;
    CREATE INDEX jobs_open ON jobs (account, sref) WHERE ended = 0 AND followed = 1;
    CREATE INDEX jobs_first_seen ON jobs (first_seen);
    CREATE TABLE events_v5 (
        account TEXT NOT NULL DEFAULT 'default',
        key TEXT NOT NULL,
        kind TEXT NOT NULL,
        sref TEXT NOT NULL,
        from_status TEXT NOT NULL,
        to_status TEXT NOT NULL,
        at REAL NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (account, key)
    );
    INSERT INTO events_v5 SELECT 'default', key, kind, sref, from_status, to_status, at,
        recorded_at FROM events ORDER BY rowid;
    DROP TABLE events;
    ALTER TABLE events_v5 RENAME TO events;
    CREATE INDEX events_recorded ON events (recorded_at);
    CREATE TABLE templates_v5 (
        account TEXT NOT NULL DEFAULT 'default',
        template TEXT NOT NULL,
        watching_since REAL NOT NULL,
        streak INTEGER NOT NULL DEFAULT 0,
        last_start REAL,
        last_name TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (account, template)
    );
    INSERT INTO templates_v5 SELECT 'default', template, watching_since, streak, last_start,
        last_name FROM templates;
    DROP TABLE templates;
    ALTER TABLE templates_v5 RENAME TO templates;
    ALTER TABLE outbox ADD COLUMN account TEXT NOT NULL DEFAULT 'default';
    """,
    # People answer back: silences, acknowledgements, and each step of an alert's life
    # after it was queued (held, silenced, each attempt and its error, sent, requeued...).
    # A requeued alert's give-up clock starts again from `requeued_at`.
    6: """
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY,
        matchers TEXT NOT NULL,
        starts_at REAL NOT NULL,
        ends_at REAL NOT NULL,
        author TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expired_at REAL
    );
    CREATE TABLE acks (
        id INTEGER PRIMARY KEY,
        account TEXT NOT NULL,
        job TEXT NOT NULL DEFAULT '',
        template TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        streak INTEGER NOT NULL DEFAULT 0,
        last_start REAL,
        author TEXT NOT NULL DEFAULT '',
        comment TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        expired_at REAL
    );
    CREATE TABLE alert_steps (
        alert_id INTEGER NOT NULL,
        at REAL NOT NULL,
        what TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX alert_steps_alert ON alert_steps (alert_id);
    CREATE INDEX alert_steps_at ON alert_steps (at);
    ALTER TABLE outbox ADD COLUMN requeued_at REAL;
    """,
    # Regressions: each series of test-run values (template, page URL, browser, metric)
    # keeps its statistics' state and its count of regressions (the next one's number);
    # completed jobs whose test runs a rule wants wait in `lookups` until they are read,
    # removed by the commit that writes what their runs changed.
    7: """
    CREATE TABLE series (
        account TEXT NOT NULL,
        template TEXT NOT NULL,
        page TEXT NOT NULL,
        browser TEXT NOT NULL,
        metric TEXT NOT NULL,
        state TEXT NOT NULL,
        regressions INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (account, template, page, browser, metric)
    );
    CREATE INDEX series_updated ON series (updated_at);
    CREATE TABLE lookups (
        account TEXT NOT NULL,
        sref TEXT NOT NULL,
        job TEXT NOT NULL,
        started_at REAL,
        queued_at REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, sref)
    );
    """,
    # The flake filter: a row per failed job started again (its key: at most one rerun
    # each); the alerts it holds are `waiting` in the outbox until it ends.
    8: """
    CREATE TABLE reruns (
        account TEXT NOT NULL,
        failed TEXT NOT NULL,
        template TEXT NOT NULL,
        job TEXT NOT NULL,
        rules TEXT NOT NULL,
        state TEXT NOT NULL,
        decided_at REAL NOT NULL,
        due_at REAL NOT NULL,
        deadline REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        claimed_at REAL,
        rerun TEXT NOT NULL DEFAULT '',
        rerun_status TEXT NOT NULL DEFAULT '',
        last_error TEXT NOT NULL DEFAULT '',
        ended_at REAL,
        PRIMARY KEY (account, failed)
    );
    CREATE INDEX reruns_open ON reruns (account, state);
    CREATE INDEX outbox_waiting ON outbox (account, sref) WHERE state = 'waiting';
    """,
    # What `status` says of an event besides its statuses: the template (a `missed`
    # event has no job) and how long the job had been stuck, or the template idle.
    9: """
    ALTER TABLE events ADD COLUMN template TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN lasted REAL;
    """,
}
