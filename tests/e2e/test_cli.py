"""The command line as a user runs it: exit codes, messages, masking."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import (
    CLIENT_SECRET,
    FIELD_KEY,
    HEADER_KEY,
    HEADER_TOKEN,
    HOOK_PASSWORD,
    URL_PASSWORD,
    Hook,
    config_document,
    free_port,
    write_config,
)
from tests.e2e import proc
from tests.unit.test_config import billion_laughs
from watcher.simulator.runner import SimulatorHandle
from watcher.simulator.world import World


def cfg(tmp_path: Path, sim: SimulatorHandle, hook: Hook, **kw: Any) -> str:
    channels = {"hook": hook.url, **kw.pop("channels", {})}
    doc = config_document(sim, tmp_path, channels, **kw)
    return str(write_config(tmp_path / "watcher.yaml", doc))


async def test_version_prints_the_version() -> None:
    """--version answers without a configuration."""
    code, out = await proc.run("--version")
    assert code == 0
    assert out.startswith("watcher ")


async def test_check_summarises_with_channel_urls_masked(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """check prints what is watched and where alerts go, without any secret."""
    code, out = await proc.run("check", "-c", cfg(tmp_path, sim, hook))
    assert code == 0, out
    assert "configuration is valid" in out
    assert "hook: json://hookuser:****@127.0.0.1" in out
    assert "failures: event=transition to=failed|expired -> hook" in out


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"rules": [{"name": "r", "match": {"to": "faild"}, "notify": ["hook"]}]},
            "rules[0].match.to: 'faild' is not a job status",
        ),
        (
            {"rules": [{"name": "r", "notify": ["nowhere"]}]},
            "rules[0].notify: 'nowhere' is not a channel",
        ),
        ({"poll": {"interval": "5 minutes"}}, "poll.interval: '5 minutes' is not a duration"),
        ({"poll": {"intervall": "5m"}}, "poll.intervall: unknown key (did you mean 'interval'?)"),
        (
            {"channels": {"bad": f"nosuchscheme://u:{HOOK_PASSWORD}@x"}},
            "channels.bad[0]: not a valid apprise URL",
        ),
        (
            {"rules": [{"name": "r", "notify": ["hook"], "title": "{{ job.nme }}"}]},
            "rules[0].title: invalid template",
        ),
        ({"api": {"realm": ""}}, "api.realm: must not be empty"),
        ({"api": {"page_size": "many"}}, "api.page_size: Input should be a valid integer"),
        ({"poll": {"lookback": -5}}, "poll.lookback: -5: a duration cannot be negative"),
        (
            {
                "delivery": {
                    "quiet_hours": [{"start": "22:00", "end": "06:00", "timezone": "Europe/Londn"}]
                }
            },
            "delivery.quiet_hours[0].timezone: 'Europe/Londn' is not a time zone",
        ),
        (
            {"api": {"client_secret": None, "client_secret_file": "/nonexistent/secret"}},
            "api.client_secret_file: cannot read /nonexistent/secret",
        ),
        (
            {"rules": [{"name": "r", "notify": ["hook"], "match": {"event": "stuck"}}]},
            "rules[0].match.after: required for event stuck",
        ),
        (
            {"rules": [{"name": "r", "notify": ["hook"], "title": "{{ ''.__class__ }}"}]},
            "rules[0].title: invalid template (SecurityError)",
        ),
        ({"log": {"level": "loud"}}, "log.level: Input should be"),
    ],
)
async def test_a_bad_configuration_is_refused_with_its_key_path(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, change: dict[str, Any], expected: str
) -> None:
    """check and run both exit 2 naming the key, with no traceback and no secret."""
    path = cfg(tmp_path, sim, hook, **change)
    for command in ("check", "run"):
        code, out = await proc.run(command, "-c", path)
        assert code == 2, out
        assert expected in out
        assert "Traceback" not in out


async def test_an_unset_environment_variable_is_named(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """${VAR} without a default and without the variable is an error naming both."""
    path = cfg(tmp_path, sim, hook, api={"client_secret": "${PA_SECRET_UNSET}"})
    code, out = await proc.run("check", "-c", path)
    assert code == 2
    assert "api.client_secret: environment variable PA_SECRET_UNSET is not set" in out


async def test_environment_overrides_and_substitution_are_applied(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """WATCHER_POLL__INTERVAL overrides the file; ${VAR} fills in the secret."""
    path = cfg(tmp_path, sim, hook, api={"client_secret": "${PA_SECRET}"})
    code, out = await proc.run(
        "check", "-c", path, PA_SECRET=CLIENT_SECRET, WATCHER_POLL__INTERVAL="7m"
    )
    assert code == 0, out
    assert "every 420s" in out


async def test_a_missing_named_file_is_an_error(tmp_path: Path) -> None:
    """-c naming a file that does not exist is refused, never silently skipped."""
    code, out = await proc.run("check", "-c", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "nope.yaml does not exist" in out


async def test_watcher_config_names_the_file(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """$WATCHER_CONFIG is used when -c is not given."""
    code, out = await proc.run("check", WATCHER_CONFIG=cfg(tmp_path, sim, hook))
    assert code == 0, out


async def test_once_polls_delivers_and_status_reports(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """once exits 0 after delivering; status shows the poll, the event and the outbox."""
    path = cfg(tmp_path, sim, hook)
    job = world.add_job(name="Checkout", status="running")
    code, out = await proc.run("once", "-c", path)
    assert code == 0, out
    world.set_status(job, "failed")
    code, out = await proc.run("once", "-c", path)
    assert code == 0, out
    assert hook.titles() == ["Checkout failed"]
    code, out = await proc.run("status", "-c", path, "--json")
    data = json.loads(out)
    assert data["outbox"] == {"pending": 0, "sent": 1, "given_up": 0}
    assert data["recent_events"][0]["to"] == "failed"
    code, out = await proc.run("status", "-c", path)
    assert "last successful poll:" in out


async def test_once_exits_1_when_a_delivery_fails(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """A channel that refuses makes once exit 1; the alert stays pending for later."""
    path = cfg(tmp_path, sim, hook, poll={"alert_on_first_run": True})
    world.add_job(name="Checkout", status="failed")
    hook.down = True
    code, _ = await proc.run("once", "-c", path)
    assert code == 1
    hook.down = False
    code, _ = await proc.run("once", "-c", path)
    assert code == 0
    assert hook.titles() == ["Checkout failed"]


async def test_once_exits_1_when_the_poll_fails(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """An API that stays down makes once exit 1."""
    world.faults.down = True
    code, out = await proc.run("once", "-c", cfg(tmp_path, sim, hook))
    assert code == 1
    assert "poll_failed" in out


async def test_notify_test_reports_delivery(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """notify-test sends one message and exits 0, or 1 when the channel refuses."""
    path = cfg(tmp_path, sim, hook)
    code, out = await proc.run("notify-test", "hook", "-c", path)
    assert code == 0, out
    assert hook.titles() == ["watcher test message"]
    hook.down = True
    code, out = await proc.run("notify-test", "hook", "-c", path)
    assert code == 1
    assert "FAILED" in out


async def test_status_refuses_a_file_that_is_not_watcher_state(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A foreign file at state.path is an error, never overwritten."""
    state = tmp_path / "state" / "watcher.db"
    state.parent.mkdir()
    state.write_bytes(b"this is not a database" * 100)
    path = cfg(tmp_path, sim, hook)
    for command in ("status", "once"):
        code, out = await proc.run(command, "-c", path)
        assert code == 2
        assert "is not a usable state file" in out
    assert state.read_bytes().startswith(b"this is not a database")


async def test_dry_run_once_changes_nothing(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """once --dry-run sends nothing and does not create the state file."""
    world.add_job(name="Checkout", status="failed")
    path = cfg(tmp_path, sim, hook, poll={"alert_on_first_run": True})
    code, out = await proc.run("--log-format", "json", "once", "--dry-run", "-c", path)
    assert code == 0, out
    assert "alert_dry_run" in out
    assert hook.received == []
    assert not (tmp_path / "state" / "watcher.db").exists()
    assert CLIENT_SECRET not in out


async def test_check_explain_prints_the_routing_table(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """check --explain lists each rule with its matchers and channels, in order."""
    code, out = await proc.run("check", "--explain", "-c", cfg(tmp_path, sim, hook))
    assert code == 0, out
    assert "routing (rules are tried in order" in out
    assert "1  failures  event=transition to=failed|expired  hook" in out


async def test_explain_tells_which_rules_fire_for_a_job_and_why(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """explain --job shows each rule's decision with its reason and the message it renders."""
    rules = [
        {
            "name": "manual-only",
            "match": {"to": "failed", "run_type": "manual"},
            "notify": ["hook"],
        },
        {
            "name": "nightly",
            "match": {"to": "failed", "name": "Nightly *"},
            "notify": ["hook"],
            "title": "{{ job.name }} {{ event.from }}->{{ event.to }}",
            "stop": True,
        },
        {"name": "catch-all", "match": {"to": "failed"}, "notify": ["hook"]},
    ]
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps(
            {
                "results": {
                    "name": "Nightly checkout",
                    "status": "failed",
                    "sref": "jobs/12345",
                    "runType": "scheduled",
                    "startedAt": "2017-02-27T13:19:11+00:00",
                }
            }
        )
    )
    path = cfg(tmp_path, sim, hook, rules=rules)
    code, out = await proc.run("explain", "-c", path, "--job", str(job), "--from", "running")
    assert code == 0, out
    assert "manual-only: no (run_type_differs)" in out
    assert "nightly: FIRES (matched)" in out
    assert "catch-all: no (stopped_by_earlier_rule)" in out
    assert "-> hook [failure] Nightly checkout running->failed" in out
    assert hook.received == []


async def test_explain_reads_a_hostile_job_file_bounded_and_prints_it_escaped(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """--job is read like any configured file (a FIFO or /dev/zero is refused, not waited
    on or read without end), and the record's text reaches the terminal escaped."""
    path = cfg(tmp_path, sim, hook)
    fifo = tmp_path / "job.fifo"
    os.mkfifo(fifo)
    for culprit, why in ((str(fifo), "it is a FIFO"), ("/dev/zero", "character device")):
        code, out = await proc.run("explain", "-c", path, "--job", culprit, "--from", "running")
        assert code == 2, out
        assert why in out, out
    job = tmp_path / "job.json"
    record = {
        "name": "Nightly \u202egnp.exe \x1b[2J",
        "status": "failed",
        "sref": "jobs/1",
        "startedAt": "2017-02-27T13:19:11+00:00",
    }
    job.write_text(json.dumps({"results": record}))
    code, out = await proc.run("explain", "-c", path, "--job", str(job), "--from", "running")
    assert code == 0, out
    assert not set("\u202e\x1b") & set(out), out
    assert "Nightly \\u202egnp.exe \\x1b[2J" in out


def json_lines(out: str) -> list[dict[str, Any]]:
    """Every line of the output as JSON; fails on a line that is not."""
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def is_json(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nosuch"], "argument COMMAND: invalid choice: 'nosuch'"),
        (["--log-level", "loud", "check"], "argument --log-level: invalid choice: 'loud'"),
        (["--bogus", "check"], "unrecognized arguments: --bogus"),
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["once", "-c"], "argument -c/--config: expected one argument"),
        (["check", "--log-level", "loud"], "argument --log-level: invalid choice: 'loud'"),
        (["check", "--version"], "unrecognized arguments: --version"),
        (["explain", "-c", "watcher.yaml"], "one of the arguments --job --series is required"),
        (["explain", "--job", "j.json", "--streak", "many"], "argument --streak: invalid int"),
        (["notify-test"], "the following arguments are required: channel"),
        (["status", "--log-format", "xml"], "argument --log-format: invalid choice: 'xml'"),
        (["demo", "--port", "1"], "unrecognized arguments: --port 1"),
        (["simulate", "--port", "many"], "argument --port: invalid int value: 'many'"),
        (["simulate", "--scenario", "nosuch"], "argument --scenario: invalid choice: 'nosuch'"),
    ],
)
async def test_a_usage_error_exits_64_with_argparse_message(args: list[str], message: str) -> None:
    """Every command's usage error is EX_USAGE (64), told apart from a configuration error."""
    code, out, err = await proc.run_apart(*args)
    assert code == 64, err
    assert out == ""
    assert err.startswith("usage: watcher"), err
    assert message in err
    assert "Traceback" not in err


async def test_a_broken_configuration_still_exits_2(tmp_path: Path) -> None:
    """A configuration error stays 2, with global options on either side of the command."""
    broken = write_config(tmp_path / "broken.yaml", {"poll": {"intervall": "5m"}})
    for args in (
        ["run", "-c", str(broken), "--log-format", "json"],
        ["--log-level", "debug", "check", "-c", str(broken)],
        ["check", "--log-level", "debug", "-c", str(broken)],
    ):
        code, _, err = await proc.run_apart(*args)
        assert code == 2, err
        assert "watcher: invalid configuration" in err
        assert "poll.intervall: unknown key" in err


@pytest.mark.parametrize(
    ("args", "as_json"),
    [
        (["once", "-c", "{path}", "--log-format", "console"], False),
        (["--log-format", "console", "once", "-c", "{path}"], False),
        (["--log-format", "json", "once", "-c", "{path}", "--log-format", "console"], False),
        (["--log-format", "console", "once", "--log-format", "json", "-c", "{path}"], True),
    ],
)
async def test_log_format_works_on_either_side_and_after_wins(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, args: list[str], as_json: bool
) -> None:
    """--log-format is global before or after the command; after the command it wins."""
    path = cfg(tmp_path, sim, hook)
    code, out = await proc.run(*(a.format(path=path) for a in args))
    assert code == 0, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, out
    assert all(is_json(line) == as_json for line in lines), out


async def test_log_level_after_the_command_takes_effect(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """--log-level after the command sets the level, and wins over one before it."""
    path = cfg(tmp_path, sim, hook)
    code, out = await proc.run("once", "-c", path, "--log-format", "json")
    assert code == 0, out
    assert "poll_done" in {line["event"] for line in json_lines(out)}, out
    code, out = await proc.run("--log-level", "info", "once", "-c", path, "--log-level", "warning")
    assert code == 0, out
    assert json_lines(out) == [], out
    code, out = await proc.run("--log-level", "warning", "once", "--log-level", "debug", "-c", path)
    assert code == 0, out
    assert "poll_done" in {line["event"] for line in json_lines(out)}, out


async def test_help_says_global_options_after_the_command_win() -> None:
    """--help, top level and per command, says where the global options go."""
    for args in (["--help"], ["check", "--help"]):
        code, out, _ = await proc.run_apart(*args)
        assert code == 0, out
        assert "--log-level" in out
        assert "after the command" in " ".join(out.split()), out


# -- hostile input: secrets in channel URLs, credentials in API URLs, hostile files and names


def argument_channels(hook: Hook) -> dict[str, str]:
    """The hook twice, its secrets as plugin arguments, "Bearer" followed by %20 and by +."""
    return {"args": hook.url_with_arguments(), "args-plus": hook.url_with_arguments("+")}


async def test_check_masks_every_plugin_argument(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """check and check --explain print the values of header, GET-parameter and payload-field
    arguments masked, however the URL writes them (proc scans the output for the secrets)."""
    path = cfg(tmp_path, sim, hook, channels=argument_channels(hook))
    for args in (["check"], ["check", "--explain"]):
        code, out = await proc.run(*args, "-c", path)
        assert code == 0, out
        for name in ("args", "args-plus"):
            assert f"  {name}: json://127.0.0.1:{hook.port}/hook?" in out, out
        assert out.count("%2BAuthorization=***&%2BX-Api-Key=***&-apikey=***&%3Atoken=***") == 2


async def test_notify_test_masks_plugin_arguments_and_still_sends_them(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """notify-test prints the channel masked as check does; the receiver gets the headers,
    the parameter and the field as configured."""
    path = cfg(tmp_path, sim, hook, channels=argument_channels(hook))
    for channel in ("args", "args-plus"):
        code, out = await proc.run("notify-test", channel, "-c", path)
        assert code == 0, out
        assert f"delivered: json://127.0.0.1:{hook.port}/hook?" in out
        assert "%2BX-Api-Key=***" in out
    assert [h["Authorization"] for h in hook.headers] == [
        f"Bearer {HEADER_TOKEN}",
        f"Bearer+{HEADER_TOKEN}",
    ]
    assert {h["X-Api-Key"] for h in hook.headers} == {HEADER_KEY}
    assert {m["token"] for m in hook.received} == {FIELD_KEY}


async def test_failing_deliveries_log_and_report_no_plugin_argument(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """With the receiver down (and one URL where nothing listens), once (at debug),
    notify-test and status show no header, parameter or field value; apprise's own lines
    arrive as event "apprise"."""
    closed = Hook(port=free_port()).url_with_arguments()
    channels = {**argument_channels(hook), "closed": closed}
    path = cfg(tmp_path, sim, hook, channels=channels, poll={"alert_on_first_run": True})
    world.add_job(name="Checkout", status="failed")
    hook.down = True
    code, out = await proc.run("--log-level", "debug", "--log-format", "json", "once", "-c", path)
    assert code == 1, out
    lines = json_lines(out)
    assert {"alert_retry", "apprise"} <= {line["event"] for line in lines}, out
    assert all(line["message"] for line in lines if line["event"] == "apprise"), out
    for channel in ("args-plus", "closed"):
        code, out = await proc.run("notify-test", channel, "-c", path)
        assert code == 1, out
        assert "FAILED: json://127.0.0.1:" in out
    for args in (["status"], ["status", "--json"]):
        code, out = await proc.run(*args, "-c", path)
        assert code == 0, out
        assert "JSON notification to 127.0.0.1" in out  # apprise's own words, masked


@pytest.mark.parametrize("key", ["base_url", "token_url"])
async def test_credentials_in_an_api_url_are_refused(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook, key: str
) -> None:
    """user:password@ in base_url or token_url passed check and then crashed every poll:
    check and once now exit 2 naming the key, without the password."""
    url = str(getattr(sim, key)).replace("http://", f"http://proxy:{URL_PASSWORD}@")
    path = cfg(tmp_path, sim, hook, api={key: url})
    for command in ("check", "once"):
        code, out = await proc.run(command, "-c", path)
        assert code == 2, out
        assert f"api.{key}: must not hold credentials (user:password@)" in out
        assert "Traceback" not in out


async def test_a_billion_laughs_file_is_refused_at_once(tmp_path: Path) -> None:
    """A 900-byte file of nested aliases (a billion strings) is refused, naming the file,
    instead of keeping check busy for minutes and gigabytes."""
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs(), encoding="utf-8")
    code, out = await proc.run("check", "-c", str(path))
    assert code == 2, out
    assert f"{path}: YAML aliases would repeat more than 10000 values" in out


async def test_a_secret_file_that_is_a_fifo_is_refused(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """client_secret_file naming a FIFO no one writes to is refused at once (it hung)."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    path = cfg(tmp_path, sim, hook, api={"client_secret": None, "client_secret_file": str(fifo)})
    code, out = await proc.run("check", "-c", path)
    assert code == 2, out
    assert f"api.client_secret_file: cannot read {fifo}: it is a FIFO, not a regular file" in out


async def test_a_state_path_that_is_a_fifo_is_refused(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """status (which hung, deaf to SIGTERM) and once refuse a FIFO at state.path, exit 2."""
    path = cfg(tmp_path, sim, hook)
    state = tmp_path / "state" / "watcher.db"
    state.parent.mkdir()
    os.mkfifo(state)
    for command in ("status", "once"):
        code, out = await proc.run(command, "-c", path)
        assert code == 2, out
        assert f"state.path: {state} is not a regular file" in out


HOSTILE_NAME = "Nightly \u202egnp.exe\u2066 \x1b[2J\x1b[31mred\r\nforged_line level=error"
RAW_CONTROLS = set("\u202e\u2066\x1b\r")


async def test_console_log_and_status_escape_what_the_api_named(
    tmp_path: Path, sim: SimulatorHandle, world: World, hook: Hook
) -> None:
    """A job name with bidi overrides, terminal escapes and a line break reaches neither the
    console log nor `status` raw: each is printed as an escape, on its own line."""
    path = cfg(tmp_path, sim, hook, poll={"alert_on_first_run": True})
    world.add_job(name=HOSTILE_NAME, status="failed")
    hook.down = True  # the alert stays pending, so that status shows its title
    code, out = await proc.run("--log-format", "console", "once", "-c", path)
    assert code == 1, out
    code, status = await proc.run("status", "-c", path)
    assert code == 0, status
    for text in (out, status):
        assert not RAW_CONTROLS & set(text), repr(text)
        assert "Nightly \\u202egnp.exe\\u2066 \\x1b[2J\\x1b[31mred\\r\\nforged_line" in text
        assert not [line for line in text.splitlines() if line.startswith("forged_line")]
    code, raw = await proc.run("status", "--json", "-c", path)
    assert not RAW_CONTROLS & set(raw)
    assert json.loads(raw)["pending"][0]["title"] == f"{HOSTILE_NAME} failed"
