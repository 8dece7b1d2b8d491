"""config.load: finding, reading, substituting and validating the YAML file, and the wording
of every error (key path first, never a secret)."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from watcher import config
from watcher.config import ConfigError
from watcher.settings import Settings

CLIENT_SECRET = "cl-SECRET-a1b2c3"
HOOK_PASSWORD = "hk-PASS-d4e5f6"
HOOK_URL = f"json://hookuser:{HOOK_PASSWORD}@127.0.0.1:8080/hook"
SECRETS = (CLIENT_SECRET, HOOK_PASSWORD)

BASE: dict[str, Any] = {
    "api": {"realm": "my-realm", "client_id": "cid", "client_secret": CLIENT_SECRET},
    "channels": {"ops": HOOK_URL},
    "rules": [
        {"name": "failures", "match": {"to": ["failed", "expired"]}, "notify": ["ops"]},
        {"name": "recoveries", "match": {"to": "completed"}, "notify": "ops"},
    ],
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment source reads os.environ: no WATCHER_* variable leaks in from outside."""
    for name in list(os.environ):
        if name.upper().startswith("WATCHER_"):
            monkeypatch.delenv(name)


def document(**changes: Any) -> dict[str, Any]:
    """BASE with top-level sections replaced or (for dicts) merged."""
    doc = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(doc.get(key), dict):
            doc[key] = {**doc[key], **value}
        else:
            doc[key] = value
    return doc


def write(tmp_path: Path, doc: dict[str, Any] | str, name: str = "watcher.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc), encoding="utf-8")
    return path


def load(path: Path, env: dict[str, str] | None = None) -> Settings:
    return config.load(str(path), env or {})


def error(path: Path, env: dict[str, str] | None = None) -> str:
    """The ConfigError text for `path`, after checking that no secret is in it."""
    with pytest.raises(ConfigError) as caught:
        load(path, env)
    text = str(caught.value)
    for secret in SECRETS:
        assert secret not in text, "a secret leaked into a configuration error"
    return text


# -- loading a valid file ------------------------------------------------------------------


def test_valid_file_loads(tmp_path: Path) -> None:
    """A valid file gives settings with its values and the documented defaults."""
    settings = load(write(tmp_path, document()))
    assert settings.api.realm == "my-realm"
    assert settings.api.client_secret is not None
    assert settings.api.client_secret.get_secret_value() == CLIENT_SECRET
    assert settings.channels == {"ops": [HOOK_URL]}
    assert [r.name for r in settings.rules] == ["failures", "recoveries"]
    assert (settings.poll.interval, settings.delivery.group_wait) == (60.0, 10.0)


def test_empty_file_reports_the_missing_section(tmp_path: Path) -> None:
    """An empty file is an empty mapping: the required api section is reported missing."""
    assert error(write(tmp_path, "")) == "api: required key is missing"


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    """A YAML list at the top is refused with a plain sentence."""
    assert "the top level must be a mapping of sections" in error(write(tmp_path, "- a\n- b\n"))


def test_broken_yaml_names_line_and_column(tmp_path: Path) -> None:
    """A YAML syntax error says where it is."""
    text = f"api:\n  client_secret: {CLIENT_SECRET}\n  realm: [unclosed\n"
    assert "line " in error(write(tmp_path, text))


# -- ${VAR} substitution --------------------------------------------------------------------


def test_variable_is_substituted(tmp_path: Path) -> None:
    """`${VAR}` takes the variable's value from the environment given."""
    doc = document(api={"client_secret": "${PA_CLIENT_SECRET}"})
    settings = load(write(tmp_path, doc), {"PA_CLIENT_SECRET": "from-env-secret"})
    assert settings.api.client_secret is not None
    assert settings.api.client_secret.get_secret_value() == "from-env-secret"


def test_variable_inside_text_is_substituted(tmp_path: Path) -> None:
    """A variable may be part of a longer string."""
    doc = document(api={"realm": "team-${TEAM}-realm"})
    assert load(write(tmp_path, doc), {"TEAM": "perf"}).api.realm == "team-perf-realm"


def test_variable_default_is_used_when_unset(tmp_path: Path) -> None:
    """`${VAR:-default}` falls back to the default."""
    doc = document(api={"realm": "${PA_REALM:-fallback-realm}"})
    assert load(write(tmp_path, doc)).api.realm == "fallback-realm"


def test_variable_default_is_not_used_when_set(tmp_path: Path) -> None:
    """`${VAR:-default}` takes the variable when it is set."""
    doc = document(api={"realm": "${PA_REALM:-fallback-realm}"})
    assert load(write(tmp_path, doc), {"PA_REALM": "set-realm"}).api.realm == "set-realm"


def test_empty_default_is_allowed(tmp_path: Path) -> None:
    """`${VAR:-}` is an empty string when unset."""
    doc = document(server={"listen": "${LISTEN:-}"})
    assert load(write(tmp_path, doc)).server.listen == ""


def test_unset_variable_names_the_key_path(tmp_path: Path) -> None:
    """An unset `${VAR}` without default is an error naming the key and the variable."""
    doc = document(api={"client_id": "${PA_CLIENT_ID}"})
    assert error(write(tmp_path, doc)) == (
        "api.client_id: environment variable PA_CLIENT_ID is not set"
    )


def test_unset_variable_in_a_list_names_the_index(tmp_path: Path) -> None:
    """The key path of a list item carries its index."""
    doc = document(channels={"ops": [HOOK_URL, "${PAGER_URL}"]})
    assert error(write(tmp_path, doc)) == (
        "channels.ops[1]: environment variable PAGER_URL is not set"
    )


def test_a_value_from_the_environment_is_named_not_echoed(tmp_path: Path) -> None:
    """A `${VAR}` value in the wrong place (here a secret as a duration) is named by its
    variable in the error, never shown."""
    doc = document(poll={"interval": "${PA_CLIENT_SECRET}", "lookback": "${LOOK:-later}"})
    text = error(write(tmp_path, doc), {"PA_CLIENT_SECRET": CLIENT_SECRET})
    assert text.splitlines() == [
        "poll.interval: '${PA_CLIENT_SECRET}' is not a duration (use seconds, or 90s, 5m, 2h, 1d)",
        "poll.lookback: 'later' is not a duration (use seconds, or 90s, 5m, 2h, 1d)",
    ]


def test_a_value_from_the_environment_inside_text_is_named(tmp_path: Path) -> None:
    """Substituted inside a longer value, the variable's part is named and the rest shown."""
    doc = document(poll={"interval": "${PA_CLIENT_SECRET}-minutes"})
    text = error(write(tmp_path, doc), {"PA_CLIENT_SECRET": CLIENT_SECRET})
    assert text.startswith("poll.interval: '${PA_CLIENT_SECRET}-minutes' is not a duration")


# -- validation errors ----------------------------------------------------------------------


def test_wrong_status_names_the_rule_and_key(tmp_path: Path) -> None:
    """The SPEC's example message, word for word up to the list of statuses."""
    doc = document()
    doc["rules"][1]["match"]["to"] = ["completed", "faild"]
    assert error(write(tmp_path, doc)).startswith(
        "rules[1].match.to: 'faild' is not a job status ("
    )


def test_wrong_status_lists_the_known_statuses(tmp_path: Path) -> None:
    """The message says which statuses exist."""
    doc = document()
    doc["rules"][1]["match"]["to"] = "faild"
    assert error(write(tmp_path, doc)) == (
        "rules[1].match.to: 'faild' is not a job status "
        "(cancelled, completed, expired, failed, pending, running)"
    )


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.update(chanels={}),
            "chanels: unknown key (did you mean 'channels'?)",
        ),
        (
            lambda d: d.update(poll={"intervl": "5s"}),
            "poll.intervl: unknown key (did you mean 'interval'?)",
        ),
        (
            lambda d: d["api"].update(client_secert="x"),
            "api.client_secert: unknown key (did you mean 'client_secret'?)",
        ),
        (
            lambda d: d["rules"][0]["match"].update(too="failed"),
            "rules[0].match.too: unknown key (did you mean 'to'?)",
        ),
        (
            lambda d: d["rules"][0]["match"].update(form="new"),
            "rules[0].match.form: unknown key (did you mean 'from'?)",
        ),
        (
            lambda d: d["rules"][1].update(titel="x"),
            "rules[1].titel: unknown key (did you mean 'title'?)",
        ),
        (
            lambda d: d.update(zzzzzz=1),
            "zzzzzz: unknown key",
        ),
    ],
    ids=["top", "section", "api", "match", "alias", "rule", "no-suggestion"],
)
def test_unknown_key_is_an_error_with_a_suggestion(
    tmp_path: Path, mutate: Any, expected: str
) -> None:
    """Unknown keys are errors at their path, with the closest known key when there is one."""
    doc = document()
    mutate(doc)
    assert error(write(tmp_path, doc)) == expected


def test_unknown_channel_in_notify(tmp_path: Path) -> None:
    """A rule naming a channel that is not defined is an error listing the channels."""
    doc = document()
    doc["rules"][1]["notify"] = ["ops", "pager"]
    assert error(write(tmp_path, doc)) == "rules[1].notify: 'pager' is not a channel (ops)"


def test_duplicate_rule_names(tmp_path: Path) -> None:
    """Rule names are unique: the second use is the error."""
    doc = document()
    doc["rules"][1]["name"] = "failures"
    assert error(write(tmp_path, doc)) == ("rules[1].name: 'failures' is used by an earlier rule")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"nosuchscheme://hookuser:{HOOK_PASSWORD}@example.com/x", "(scheme 'nosuchscheme')"),
        (f"hookuser:{HOOK_PASSWORD}@example.com", "not a URL"),
        (f"mailtos://hookuser:{HOOK_PASSWORD}@", "(scheme 'mailtos')"),
    ],
)
def test_invalid_apprise_url_hides_its_credentials(tmp_path: Path, url: str, expected: str) -> None:
    """A bad channel URL is named by channel and index, never echoed."""
    doc = document(channels={"ops": [HOOK_URL, url]})
    text = error(write(tmp_path, doc))
    assert text.startswith("channels.ops[1]: ")
    assert expected in text


def test_channel_without_url(tmp_path: Path) -> None:
    """A channel with an empty list of URLs is an error."""
    doc = document(channels={"ops": HOOK_URL, "empty": []})
    assert "channel 'empty' has no URL" in error(write(tmp_path, doc))


def test_template_syntax_error(tmp_path: Path) -> None:
    """A template that does not parse is an error at its key."""
    doc = document()
    doc["rules"][0]["title"] = "{% if %}"
    assert error(write(tmp_path, doc)).startswith(
        "rules[0].title: invalid template (TemplateSyntaxError): "
    )


def test_template_unknown_variable(tmp_path: Path) -> None:
    """A template using a variable that does not exist is an error at its key."""
    doc = document()
    doc["rules"][1]["body"] = "{{ job.sref }} {{ job.colour }}"
    text = error(write(tmp_path, doc))
    assert text.startswith("rules[1].body: invalid template (UndefinedError): ")
    assert "colour" in text


def test_template_failing_at_render_time_is_a_config_error(tmp_path: Path) -> None:
    """A template that parses but cannot render (here: divides by zero) is a ConfigError."""
    doc = document()
    doc["rules"][0]["title"] = "{{ job.page_count / 0 }}"
    assert error(write(tmp_path, doc)).startswith("rules[0].title: invalid template")


def test_bad_duration_names_the_key(tmp_path: Path) -> None:
    """A duration that cannot be read is named by its key."""
    doc = document(poll={"interval": "5x"})
    assert error(write(tmp_path, doc)) == (
        "poll.interval: '5x' is not a duration (use seconds, or 90s, 5m, 2h, 1d)"
    )


@pytest.mark.parametrize(
    ("value", "size"),
    [("16MB", 16_000_000), ("16MiB", 16_777_216), ("512 kB", 512_000), (1048576, 1048576)],
)
def test_max_response_size_reads_sizes_and_bytes(tmp_path: Path, value: object, size: int) -> None:
    """api.max_response_size: kB/MB/GB (powers of 1000), KiB/MiB/GiB, or a number of bytes."""
    settings = load(write(tmp_path, document(api={**BASE["api"], "max_response_size": value})))
    assert settings.api.max_response_size == size


def test_max_response_size_defaults_to_16_mb(tmp_path: Path) -> None:
    """The default leaves room for a full page of 10,000 records."""
    assert load(write(tmp_path, document())).api.max_response_size == 16_000_000


@pytest.mark.parametrize(("value", "problem"), [("lots", "byte string"), (10, "1024")])
def test_a_bad_max_response_size_names_the_key(tmp_path: Path, value: object, problem: str) -> None:
    """An unreadable size, or one below 1 KiB, is an error at api.max_response_size."""
    text = error(write(tmp_path, document(api={**BASE["api"], "max_response_size": value})))
    assert text.startswith("api.max_response_size: ")
    assert problem in text


def test_max_response_size_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHER_API__MAX_RESPONSE_SIZE takes the same forms."""
    monkeypatch.setenv("WATCHER_API__MAX_RESPONSE_SIZE", "2MiB")
    assert load(write(tmp_path, document())).api.max_response_size == 2 * 1024 * 1024


def test_every_problem_is_reported(tmp_path: Path) -> None:
    """Several problems give one line each, not only the first."""
    doc = document(poll={"interval": "5x", "lookback": "later"}, log={"format": "xml"})
    lines = error(write(tmp_path, doc)).splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        "poll.interval",
        "poll.lookback",
        "log.format",
    ]


def test_missing_credentials(tmp_path: Path) -> None:
    """Neither client credentials nor a token is an error at api.client_id."""
    doc = document()
    doc["api"] = {"realm": "r", "client_id": "cid"}
    assert error(write(tmp_path, doc)).startswith("api.client_id: set client_id and client_secret")


@pytest.mark.parametrize("key", ["client_secret", "access_token"])
@pytest.mark.parametrize("shape", ["mapping", "list"])
def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path: Path, key: str, shape: str) -> None:
    """A secret given as a mapping or a list is refused by type, without its content."""
    doc = document()
    doc["api"][key] = {"value": CLIENT_SECRET} if shape == "mapping" else [CLIENT_SECRET]
    assert error(write(tmp_path, doc)).startswith(f"api.{key}: Input should be a valid string")


def test_wrong_type_does_not_echo_the_value(tmp_path: Path) -> None:
    """A secret given where a number belongs is not repeated in the error."""
    doc = document(api={"page_size": CLIENT_SECRET})
    assert error(write(tmp_path, doc)).startswith("api.page_size: ")


# -- secrets from files ---------------------------------------------------------------------


def test_client_secret_file_is_read(tmp_path: Path) -> None:
    """client_secret_file's content (stripped) becomes the client secret."""
    secret = tmp_path / "secret"
    secret.write_text(f"{CLIENT_SECRET}\n", encoding="utf-8")
    doc = document()
    del doc["api"]["client_secret"]
    doc["api"]["client_secret_file"] = str(secret)
    settings = load(write(tmp_path, doc))
    assert settings.api.client_secret is not None
    assert settings.api.client_secret.get_secret_value() == CLIENT_SECRET


def test_client_secret_file_missing(tmp_path: Path) -> None:
    """A secret file that does not exist is an error at api.client_secret_file."""
    doc = document()
    del doc["api"]["client_secret"]
    doc["api"]["client_secret_file"] = str(tmp_path / "absent")
    text = error(write(tmp_path, doc))
    assert text.startswith("api.client_secret_file: cannot read ")
    assert "No such file or directory" in text


def test_client_secret_file_unreadable(tmp_path: Path) -> None:
    """A secret path that cannot be read as a file (a directory) is an error."""
    doc = document()
    del doc["api"]["client_secret"]
    doc["api"]["client_secret_file"] = str(tmp_path)
    assert error(write(tmp_path, doc)).startswith("api.client_secret_file: cannot read ")


def test_client_secret_file_empty(tmp_path: Path) -> None:
    """An empty (or blank) secret file is an error, not an empty secret."""
    secret = tmp_path / "secret"
    secret.write_text("\n  \n", encoding="utf-8")
    doc = document()
    del doc["api"]["client_secret"]
    doc["api"]["client_secret_file"] = str(secret)
    assert error(write(tmp_path, doc)) == f"api.client_secret_file: {secret} is empty"


def test_client_secret_and_file_together(tmp_path: Path) -> None:
    """Setting both the secret and its file is ambiguous and refused."""
    secret = tmp_path / "secret"
    secret.write_text("other-secret", encoding="utf-8")
    doc = document(api={"client_secret_file": str(secret)})
    assert error(write(tmp_path, doc)).startswith("api.client_secret: set client_secret or")


def secret_file_document(path: Path, key: str = "client_secret") -> dict[str, Any]:
    doc = document()
    del doc["api"]["client_secret"]
    doc["api"][f"{key}_file"] = str(path)
    if key == "access_token":
        del doc["api"]["client_id"]
    return doc


def test_client_secret_file_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    """A FIFO with no writer would hang `check` and the daemon's start: refused at once."""
    fifo = tmp_path / "secret"
    os.mkfifo(fifo)
    assert error(write(tmp_path, secret_file_document(fifo))) == (
        f"api.client_secret_file: cannot read {fifo}: it is a FIFO, not a regular file"
    )


def test_access_token_file_that_is_dev_zero_is_refused(tmp_path: Path) -> None:
    """A device that never ends is not read (it would fill memory)."""
    doc = secret_file_document(Path("/dev/zero"), "access_token")
    assert error(write(tmp_path, doc)) == (
        "api.access_token_file: cannot read /dev/zero: it is a character device, not a regular file"
    )


def test_a_secret_file_larger_than_64_kib_is_refused(tmp_path: Path) -> None:
    """A secret is small: a file over 64 KiB is a mistake, refused without reading it all."""
    big = tmp_path / "secret"
    big.write_bytes(CLIENT_SECRET.encode() * 10_000)
    assert error(write(tmp_path, secret_file_document(big))) == (
        f"api.client_secret_file: cannot read {big}: it is larger than 64 KiB"
    )


def test_a_secret_file_that_is_not_utf8_is_refused_without_its_bytes(tmp_path: Path) -> None:
    """The decoder's message would quote a byte of the secret: only its position is said."""
    binary = tmp_path / "secret"
    binary.write_bytes(b"\xff" + CLIENT_SECRET.encode())
    assert error(write(tmp_path, secret_file_document(binary))) == (
        f"api.client_secret_file: cannot read {binary}: it is not UTF-8 text (byte 1)"
    )


# -- environment overrides ------------------------------------------------------------------


def test_env_client_secret_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHER_API__CLIENT_SECRET replaces the file's client_secret."""
    monkeypatch.setenv("WATCHER_API__CLIENT_SECRET", "env-secret-value")
    settings = load(write(tmp_path, document()))
    assert settings.api.client_secret is not None
    assert settings.api.client_secret.get_secret_value() == "env-secret-value"


def test_env_override_keeps_the_rest_of_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An override of one key leaves the section's other YAML keys in place."""
    monkeypatch.setenv("WATCHER_API__CLIENT_SECRET", "env-secret-value")
    settings = load(write(tmp_path, document()))
    assert (settings.api.realm, settings.api.client_id) == ("my-realm", "cid")


def test_env_poll_interval_wins_over_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WATCHER_POLL__INTERVAL replaces the file's interval, in the duration forms."""
    monkeypatch.setenv("WATCHER_POLL__INTERVAL", "90s")
    settings = load(write(tmp_path, document(poll={"interval": "5s", "lookback": "2h"})))
    assert (settings.poll.interval, settings.poll.lookback) == (90.0, 7200.0)


def test_bad_env_override_names_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreadable override is reported at the key it overrides."""
    monkeypatch.setenv("WATCHER_POLL__INTERVAL", "soon")
    assert error(write(tmp_path, document())).startswith("poll.interval: 'soon' is not a duration")


@pytest.mark.parametrize("name", ["WATCHER_CHANNELS", "WATCHER_API"])
def test_an_override_that_is_not_json_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A section given as a variable must be JSON: broken JSON is a configuration error
    naming the variable (it was a traceback and exit 1), and the value is not shown."""
    monkeypatch.setenv(name, f'{{"x": "json://u:{HOOK_PASSWORD}@h", "y": "{CLIENT_SECRET}" oops')
    field = name.removeprefix("WATCHER_").lower()
    assert error(write(tmp_path, document())) == f"{field}: {name} is not valid JSON"


def test_a_key_override_that_is_not_json_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's variable within a section is named as such."""
    monkeypatch.setenv("WATCHER_DELIVERY__QUIET_HOURS", "[{broken")
    assert error(write(tmp_path, document())) == (
        "delivery: WATCHER_DELIVERY__QUIET_HOURS is not valid JSON"
    )


# -- finding the file -----------------------------------------------------------------------


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    """A file named with -c that does not exist is an error, never skipped."""
    missing = tmp_path / "nope.yaml"
    assert error(missing) == f"--config: {missing} does not exist or is not a file"


def test_watcher_config_variable_is_used(tmp_path: Path) -> None:
    """Without -c, $WATCHER_CONFIG names the file."""
    path = write(tmp_path, document(), name="elsewhere.yaml")
    assert config.load(None, {"WATCHER_CONFIG": str(path)}).api.realm == "my-realm"


def test_missing_watcher_config_file_is_an_error(tmp_path: Path) -> None:
    """A file named by $WATCHER_CONFIG that does not exist is an error, never skipped."""
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        config.load(None, {"WATCHER_CONFIG": str(missing)})
    assert str(caught.value) == f"WATCHER_CONFIG: {missing} does not exist or is not a file"


def test_explicit_file_wins_over_watcher_config(tmp_path: Path) -> None:
    """-c is preferred to $WATCHER_CONFIG."""
    chosen = write(tmp_path, document(api={"realm": "chosen"}), name="chosen.yaml")
    other = write(tmp_path, document(api={"realm": "other"}), name="other.yaml")
    settings = config.load(str(chosen), {"WATCHER_CONFIG": str(other)})
    assert settings.api.realm == "chosen"


def test_watcher_config_from_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no env mapping given, $WATCHER_CONFIG is read from os.environ (and is not a key)."""
    monkeypatch.setenv("WATCHER_CONFIG", str(write(tmp_path, document())))
    assert config.load().api.realm == "my-realm"


def test_watcher_yaml_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without -c or $WATCHER_CONFIG, ./watcher.yaml is used."""
    write(tmp_path, document(api={"realm": "local"}))
    monkeypatch.chdir(tmp_path)
    assert config.load(None, {}).api.realm == "local"


# -- hostile files --------------------------------------------------------------------------


def test_a_configuration_file_over_4_mib_is_refused(tmp_path: Path) -> None:
    """The file is read up to 4 MiB and no further."""
    text = yaml.safe_dump(document()) + "#" + "x" * (4 * 1024 * 1024) + "\n"
    path = write(tmp_path, text)
    assert error(path) == f"{path}: cannot read: it is larger than 4 MiB"


def test_a_configuration_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are named by position."""
    path = tmp_path / "watcher.yaml"
    path.write_bytes(b"api:\n  realm: \xff\n")
    assert error(path) == f"{path}: cannot read: it is not UTF-8 text (byte 15)"


def billion_laughs(levels: int = 9) -> str:
    """The classic: nine levels of nine aliases each, under 1 KB, a billion strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        name, below = chr(ord("a") + level), chr(ord("a") + level - 1)
        lines.append(f"{name}: &{name} [{','.join([f'*{below}'] * 9)}]")
    return "\n".join(lines) + "\n"


# libyaml's parser when PyYAML was built with it, else the pure-Python one: both bounded.
LOADERS = [yaml.SafeLoader, *([yaml.CSafeLoader] if yaml.__with_libyaml__ else [])]


@pytest.fixture(params=LOADERS, ids=lambda loader: loader.__name__)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs the test with each YAML parser (the choice is made once, at import)."""
    monkeypatch.setattr(config, "_Loader", request.param)


@pytest.mark.usefixtures("loader")
def test_billion_laughs_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Aliases that would expand the document past a small bound are refused, naming the
    file (the expansion would take minutes and gigabytes)."""
    text = billion_laughs()
    assert len(text) < 1000
    path = write(tmp_path, yaml.safe_dump(document()) + text)
    assert error(path) == (
        f"{path}: YAML aliases would repeat more than 10000 values"
        " (write them out, or use fewer aliases)"
    )


@pytest.mark.usefixtures("loader")
def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    """A recursive alias makes a structure without end: refused where it is."""
    text = yaml.safe_dump(document())
    path = write(tmp_path, text + "loop: &loop [1, *loop]\n")
    line = text.count("\n") + 1
    assert error(path) == (
        f"{path}: line {line}, column 7: this alias refers to the collection that contains it"
    )


@pytest.mark.usefixtures("loader")
@pytest.mark.parametrize(
    ("key", "kind"), [("on", "bool"), ("yes", "bool"), ("404", "int"), ("~", "null")]
)
def test_a_key_yaml_reads_as_no_name_is_refused_where_it_stands(
    tmp_path: Path, key: str, kind: str
) -> None:
    """`on:` in a rule is a boolean to YAML 1.1: the error names the key, its line and
    the fix; quoted, the same key is a name (and reaches validation)."""
    text = yaml.safe_dump(document())
    path = write(tmp_path, text + f"log:\n  {key}: 1\n")
    line = text.count("\n") + 2
    assert error(path) == (
        f"{path}: line {line}, column 3: the key {key} reads as a {kind} in YAML, not a name:"
        f' quote it ("{key}")'
    )
    quoted = write(tmp_path, text + f'log:\n  "{key}": 1\n', "quoted.yaml")
    assert "reads as" not in error(quoted)


@pytest.mark.usefixtures("loader")
def test_nesting_past_the_bound_is_refused(tmp_path: Path) -> None:
    """A document nested deeper than any configuration needs is refused, in flow style and
    in block style."""
    flow = write(tmp_path, "api: " + "[" * 400 + "]" * 400 + "\n", "flow.yaml")
    block = write(
        tmp_path,
        "".join(f"{'  ' * n}k{n}:\n" for n in range(400)) + "  " * 400 + "v\n",
        "block.yaml",
    )
    just_past = write(tmp_path, "api: " + "[" * 51 + "]" * 51 + "\n", "just-past.yaml")
    for path in (flow, block, just_past):
        text = error(path)
        assert text.startswith(f"{path}: "), text
        assert text.endswith("nested deeper than 50 levels"), text
    # Nested within the bound, the document reaches validation.
    shallow = write(tmp_path, yaml.safe_dump(document(log={"level": [[[["info"]]]]})), "ok.yaml")
    assert error(shallow).startswith("log.level: Input should be")


@pytest.mark.usefixtures("loader")
def test_aliases_used_within_the_bound_are_fine(tmp_path: Path) -> None:
    """Anchors shared between rules, the ordinary use, load as if written out."""
    text = (
        f"api: {{realm: my-realm, client_id: cid, client_secret: {CLIENT_SECRET}}}\n"
        f'channels: {{ops: "{HOOK_URL}"}}\n'
        "rules:\n"
        "  - name: failures\n"
        '    match: &failed {to: [failed, expired], name: "Nightly *"}\n'
        "    notify: &ops [ops]\n"
        "  - name: again\n"
        "    match: *failed\n"
        "    notify: *ops\n"
    )
    settings = load(write(tmp_path, text))
    assert settings.rules[0].match == settings.rules[1].match
    assert settings.rules[1].notify == ["ops"]


def test_more_than_1000_channel_urls_are_refused(tmp_path: Path) -> None:
    """Each URL costs apprise's parsing at every start and a place in every log line's
    redaction: past 1000 the file is refused before any URL is parsed."""
    doc = document(channels={f"c{n}": [HOOK_URL, HOOK_URL] for n in range(501)})  # and "ops"
    assert error(write(tmp_path, doc)) == "channels: 1003 URLs; at most 1000 are supported"


def test_more_than_1000_rules_are_refused(tmp_path: Path) -> None:
    """Every rule is tried on every event: past 1000 the file is refused before any rule's
    templates are compiled."""
    doc = document(rules=[{"name": f"r{n}", "notify": "ops"} for n in range(1001)])
    assert error(write(tmp_path, doc)) == "rules: 1001 rules; at most 1000 are supported"


def test_1000_rules_and_channel_urls_are_fine(tmp_path: Path) -> None:
    """The bounds themselves are accepted."""
    doc = document(
        channels={f"c{n}": HOOK_URL for n in range(999)},  # and BASE's "ops"
        rules=[{"name": f"r{n}", "notify": f"c{n % 999}"} for n in range(1000)],
    )
    settings = load(write(tmp_path, doc))
    assert (len(settings.channels), len(settings.rules)) == (1000, 1000)


# -- scale-out: the store, ha, accounts ------------------------------------------------------

PG_PASSWORD = "pg-PASS-0d9e8f"


def test_state_url_takes_its_password_from_the_environment(tmp_path: Path) -> None:
    """`${PGPASSWORD}` in the URL is replaced like any variable; the store is PostgreSQL."""
    url = "postgresql://watcher:${PGPASSWORD}@db.internal:5432/watcher"
    settings = load(write(tmp_path, document(state={"url": url})), {"PGPASSWORD": PG_PASSWORD})
    assert settings.state.backend == "postgresql"
    assert settings.state.url is not None
    assert settings.state.url.get_secret_value() == (
        f"postgresql://watcher:{PG_PASSWORD}@db.internal:5432/watcher"
    )


def test_state_path_and_url_together_name_the_section(tmp_path: Path) -> None:
    """Exactly one store: both given is an error at `state`."""
    doc = document(state={"path": "x.db", "url": f"postgresql://w:{PG_PASSWORD}@db/w"})
    assert error(write(tmp_path, doc)) == "state: give path (SQLite) or url (PostgreSQL), not both"


def test_state_url_from_the_environment_beside_a_path_is_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHER_STATE__URL counts as given: with a path in the file, that is both."""
    monkeypatch.setenv("WATCHER_STATE__URL", f"postgresql://w:{PG_PASSWORD}@db/w")
    doc = document(state={"path": "x.db"})
    assert error(write(tmp_path, doc)) == "state: give path (SQLite) or url (PostgreSQL), not both"
    settings = load(write(tmp_path, document()))
    assert settings.state.backend == "postgresql"


def test_a_state_url_of_another_scheme_names_the_key(tmp_path: Path) -> None:
    """A URL that is not PostgreSQL's is an error at state.url, without the URL."""
    doc = document(state={"url": "mysql://watcher:${PGPASSWORD}@db/watcher"})
    text = error(write(tmp_path, doc), {"PGPASSWORD": PG_PASSWORD})
    assert text.startswith("state.url: not a PostgreSQL URL: it starts with postgresql://")
    assert PG_PASSWORD not in text


@pytest.mark.parametrize(
    ("ha", "expected"),
    [
        ({"lease": "1s"}, "ha.lease: 1s: must be at least 3s and at most 1h"),
        ({"lease": "2h"}, "ha.lease: 7200s: must be at least 3s and at most 1h"),
        ({"lease": "soon"}, "ha.lease: 'soon' is not a duration"),
        ({"replica": ""}, "ha.replica: must not be empty"),
        ({"replica": "r" * 101}, "ha.replica: at most 100 characters"),
        ({"replica": "web\x1b[2J"}, "ha.replica: must be printable (no control characters)"),
        ({"leese": "30s"}, "ha.leese: unknown key (did you mean 'lease'?)"),
    ],
)
def test_ha_problems_name_the_key(tmp_path: Path, ha: dict[str, Any], expected: str) -> None:
    """Each ha problem is reported at its key."""
    assert error(write(tmp_path, document(ha=ha))).startswith(expected)


def test_ha_is_accepted_with_sqlite(tmp_path: Path) -> None:
    """With SQLite, ha is accepted (and ignored by the daemon)."""
    settings = load(write(tmp_path, document(ha={"lease": "45s", "replica": "web-1"})))
    assert (settings.state.backend, settings.ha.lease, settings.ha.replica) == (
        "sqlite",
        45.0,
        "web-1",
    )


def test_ha_replica_from_the_environment(tmp_path: Path) -> None:
    """`replica: ${HOSTNAME}`, as in a Kubernetes pod."""
    doc = document(ha={"replica": "${HOSTNAME}"})
    assert load(write(tmp_path, doc), {"HOSTNAME": "watcher-7d9f-x2"}).ha.replica == (
        "watcher-7d9f-x2"
    )


def accounts_document(**accounts: dict[str, Any]) -> dict[str, Any]:
    """BASE with a top-level api block that holds what the accounts share, and `accounts`."""
    doc = document(accounts=accounts)
    doc["api"] = {"client_id": "shared-id", "page_size": 50}
    return doc


def test_accounts_merge_over_the_api_block(tmp_path: Path) -> None:
    """The SPEC's example: each account gives its realm and secret; the rest is the api
    block's (or the default)."""
    (tmp_path / "uk").write_text("uk-secret-value\n", encoding="utf-8")
    doc = accounts_document(
        **{
            "shop-uk": {"realm": "shop-uk-realm", "client_secret_file": str(tmp_path / "uk")},
            "shop-de": {"realm": "shop-de-realm", "client_id": "${DE_ID}", "client_secret": "x1y2"},
        }
    )
    text = yaml.safe_dump(doc, sort_keys=False)
    settings = load(write(tmp_path, text), {"DE_ID": "de-id"})
    accounts = settings.accounts_resolved()
    assert list(accounts) == ["shop-uk", "shop-de"]  # the file's order
    uk, de = accounts["shop-uk"], accounts["shop-de"]
    assert (uk.realm, uk.client_id, uk.page_size) == ("shop-uk-realm", "shared-id", 50)
    assert (de.realm, de.client_id, de.page_size) == ("shop-de-realm", "de-id", 50)
    assert uk.client_secret is not None
    assert uk.client_secret.get_secret_value() == "uk-secret-value"
    assert settings.api == uk


def test_a_realm_missing_everywhere_names_the_account(tmp_path: Path) -> None:
    """realm is required of each resulting account: the error names the account's key."""
    doc = accounts_document(**{"shop-uk": {"realm": "uk", "client_secret": "s1"}, "shop-de": {}})
    assert error(write(tmp_path, doc)).splitlines() == [
        "accounts.shop-de.realm: required key is missing"
    ]


def test_credentials_missing_everywhere_name_the_account(tmp_path: Path) -> None:
    """So are credentials: neither the account nor the api block gives a secret."""
    doc = accounts_document(**{"shop-uk": {"realm": "uk"}})
    assert error(write(tmp_path, doc)) == (
        "accounts.shop-uk.client_id: set client_id and client_secret (or client_secret_file),"
        " or access_token"
    )


def test_a_realm_in_the_api_block_serves_every_account(tmp_path: Path) -> None:
    """A key in the api block is every account's unless the account gives its own."""
    doc = accounts_document(a={"client_secret": "s1"}, b={"realm": "b", "access_token": "t1"})
    doc["api"]["realm"] = "shared-realm"
    accounts = load(write(tmp_path, doc)).accounts_resolved()
    assert [api.realm for api in accounts.values()] == ["shared-realm", "b"]


def test_a_bad_value_in_the_api_block_is_reported_once_at_api(tmp_path: Path) -> None:
    """A wrong value that accounts inherit is named where it is written, once, not once
    per account; an account's own mistakes are named at the account."""
    doc = accounts_document(
        **{
            "shop-uk": {"realm": "uk", "client_secret": "s1"},
            "shop-de": {"realm": "de", "client_secret": "s2", "timeout": "soon"},
        }
    )
    doc["api"].update(page_size="many", relm="x")
    assert error(write(tmp_path, doc)).splitlines() == [
        "api.page_size: Input should be a valid integer, unable to parse string as an integer",
        "api.relm: unknown key (did you mean 'realm'?)",
        "accounts.shop-de.timeout: 'soon' is not a duration (use seconds, or 90s, 5m, 2h, 1d)",
    ]


def test_a_bad_secret_file_in_the_api_block_is_reported_once(tmp_path: Path) -> None:
    """An unreadable client_secret_file in the api block is its error, and an account that
    gives its own secret is fine."""
    doc = accounts_document(**{"shop-uk": {"realm": "uk", "client_secret": "s1"}})
    doc["api"]["client_secret_file"] = str(tmp_path / "missing")
    assert error(write(tmp_path, doc)) == (
        f"api.client_secret_file: cannot read {tmp_path / 'missing'}: No such file or directory"
    )


def test_an_unknown_key_in_an_account_is_named_with_a_suggestion(tmp_path: Path) -> None:
    """An account accepts the keys of the api block, and only those."""
    doc = accounts_document(**{"shop-uk": {"relm": "uk", "client_secret": "s1"}})
    assert "accounts.shop-uk.relm: unknown key (did you mean 'realm'?)" in (
        error(write(tmp_path, doc)).splitlines()
    )


@pytest.mark.parametrize("name", ["Shop-UK", "shop uk", "-shop", "x" * 64])
def test_a_bad_account_name_is_named(tmp_path: Path, name: str) -> None:
    """Names become metric labels and database keys: the rule is in the message."""
    doc = accounts_document(**{name: {"realm": "r", "client_secret": "s1"}})
    assert error(write(tmp_path, doc)) == (
        f"accounts: {name!r} is not an account name (1 to 63 of a-z, 0-9, _ and -,"
        " starting with a letter or digit)"
    )


def test_an_empty_accounts_section_is_an_error(tmp_path: Path) -> None:
    """`accounts: {}` is a mistake, not a way to say "the api block"."""
    assert error(write(tmp_path, document(accounts={}))) == (
        "accounts: name at least one account, or leave accounts out (then the top-level api"
        " block is the one account, 'default')"
    )


def test_an_account_with_an_empty_block_takes_everything_from_api(tmp_path: Path) -> None:
    """`shop-uk:` with nothing under it is the api block under that name."""
    settings = load(write(tmp_path, document(accounts={"shop-uk": None})))
    assert list(settings.accounts_resolved()) == ["shop-uk"]
    assert settings.accounts_resolved()["shop-uk"] == settings.api


def test_more_than_100_accounts_are_refused(tmp_path: Path) -> None:
    """Each account reads its secret files and is polled: at most 100."""
    doc = document(accounts={f"a{n}": {} for n in range(101)})
    assert error(write(tmp_path, doc)) == "accounts: 101 accounts; at most 100 are supported"


def test_an_account_override_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """WATCHER_ACCOUNTS__<NAME>__<KEY> overrides an account's key, for names that a
    variable can spell (lower case, digits and _): shop_uk, not shop-uk."""
    monkeypatch.setenv("WATCHER_ACCOUNTS__SHOP_UK__CLIENT_SECRET", "env-secret-value")
    doc = accounts_document(shop_uk={"realm": "uk", "client_secret": "file-secret"})
    api = load(write(tmp_path, doc)).accounts_resolved()["shop_uk"]
    assert api.client_secret is not None
    assert api.client_secret.get_secret_value() == "env-secret-value"


def test_an_account_override_for_a_name_with_a_hyphen_is_another_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable cannot spell shop-uk: WATCHER_ACCOUNTS__SHOP_UK__... names shop_uk, an
    account that the file does not have, and is reported as such."""
    monkeypatch.setenv("WATCHER_ACCOUNTS__SHOP_UK__CLIENT_SECRET", "env-secret-value")
    doc = accounts_document(**{"shop-uk": {"realm": "uk", "client_secret": "file-secret"}})
    assert error(write(tmp_path, doc)) == "accounts.shop_uk.realm: required key is missing"


def test_match_account_must_name_a_configured_account(tmp_path: Path) -> None:
    """A rule for an account that is not configured is an error listing the accounts."""
    doc = accounts_document(
        **{"shop-uk": {"realm": "uk", "client_secret": "s1"}, "shop-de": {"realm": "de"}}
    )
    doc["api"]["client_secret"] = "s2"
    doc["rules"][0]["match"]["account"] = ["shop-uk", "shop-fr"]
    assert error(write(tmp_path, doc)) == (
        "rules[0].match.account: 'shop-fr' is not a configured account (shop-de, shop-uk)"
    )
    doc["rules"][0]["match"]["account"] = "shop-de"
    assert load(write(tmp_path, doc)).rules[0].match.account == ["shop-de"]


def test_without_accounts_the_only_account_is_default(tmp_path: Path) -> None:
    """With no accounts section, `default` is the one name a rule may give."""
    doc = document()
    doc["rules"][0]["match"]["account"] = "shop-uk"
    assert error(write(tmp_path, doc)) == (
        "rules[0].match.account: 'shop-uk' is not a configured account (default)"
    )
    doc["rules"][0]["match"]["account"] = "default"
    assert load(write(tmp_path, doc)).rules[0].match.account == ["default"]


# -- the example configuration --------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "watcher.example.yaml"


def _keys(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of the configuration tree below `model`, as a dotted path."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        yield key
        # A section, an optional one, a list or a mapping of them (rules, accounts).
        shapes = [field.annotation, *getattr(field.annotation, "__args__", ())]
        for shape in shapes:
            if isinstance(shape, type) and issubclass(shape, BaseModel):
                yield from _keys(shape, f"{key}.")


def test_the_example_documents_every_key() -> None:
    """watcher.example.yaml names every key (commented out where there is no one default
    to show), so that a new key cannot be added without documenting it there."""
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        key
        for key in dict.fromkeys(_keys(Settings))
        if not re.search(rf"(?<![\w.-]){re.escape(key.rsplit('.', 1)[-1])}:", text)
    ]
    assert not missing, f"not in watcher.example.yaml: {missing}"


# (case, the missed rule's match, the error)
MISSED_SCHEDULE = [
    (
        "every and schedule",
        {"every": "24h", "schedule": "0 2 * * *"},
        "rules[0].match.schedule: give every or schedule, not both",
    ),
    (
        "bad cron",
        {"schedule": "0 25 * * *"},
        "rules[0].match.schedule: '0 25 * * *' is not a cron expression: ",
    ),
    (
        "unknown zone",
        {"schedule": "0 2 * * *", "timezone": "Europe/Londres"},
        "rules[0].match.timezone: 'Europe/Londres' is not a time zone",
    ),
]


@pytest.mark.parametrize(
    ("match", "expected"), [pytest.param(*case[1:], id=case[0]) for case in MISSED_SCHEDULE]
)
def test_missed_schedule_errors_name_the_key(
    tmp_path: Path, match: dict[str, Any], expected: str
) -> None:
    """Each row: a schedule problem is reported at its key path."""
    rule = {
        "name": "nightly",
        "match": {"event": "missed", "template": "jobTemplates/1", **match},
        "notify": "ops",
    }
    assert error(write(tmp_path, document(rules=[rule]))).startswith(expected)


def test_check_prints_the_schedule_and_its_zone(tmp_path: Path) -> None:
    """`watcher check` lists a schedule quoted, with its time zone (UTC when not given)."""
    from watcher.report import matchers

    rules = [
        {
            "name": f"r{i}",
            "match": {"event": "missed", "template": "jobTemplates/1", **extra},
            "notify": "ops",
        }
        for i, extra in enumerate(
            [
                {"schedule": "0 2 * * 1-5", "timezone": "Europe/London", "grace": "45m"},
                {"schedule": "30 1 * * *"},
            ]
        )
    ]
    settings = load(write(tmp_path, document(rules=rules)))
    assert [matchers(r) for r in settings.rules] == [
        'event=missed template=jobTemplates/1 schedule="0 2 * * 1-5" timezone=Europe/London'
        " grace=2700s",
        'event=missed template=jobTemplates/1 schedule="30 1 * * *" timezone=UTC',
    ]


# -- offline: the commands that use only the state -----------------------------------------


def offline(path: Path, env: dict[str, str] | None = None) -> Settings:
    return config.load(str(path), env or {}, offline=True)


@pytest.mark.parametrize(
    "changes",
    [
        {"api": {"client_secret": "${PA_CLIENT_SECRET}"}},
        {"api": {"client_id": "${PA_CLIENT_ID}", "realm": "${PA_REALM}"}},
        {"api": {"client_secret": None, "client_secret_file": "${CREDENTIALS_DIRECTORY}/pa"}},
        {"api": {"client_secret": None, "access_token": "${PA_TOKEN}"}},
        {"api": {"base_url": "https://${PA_HOST}/pa/v1", "timeout": "${PA_TIMEOUT}"}},
        {"accounts": {"uk": {"client_secret": "${UK_SECRET}"}, "us": {}}},
        {"channels": {"ops": "json://hookuser:${HOOK_PASSWORD}@127.0.0.1/hook"}},
        {"channels": {"ops": [HOOK_URL, "slack://${SLACK_A}/${SLACK_B}/${SLACK_C}"]}},
    ],
)
def test_offline_an_unset_variable_of_the_api_or_a_channel_is_no_error(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    """status, history, silence, ack and retry load a file whose API and channel secrets
    are not in their environment; run, once and check still refuse it."""
    path = write(tmp_path, document(**changes))
    assert "is not set" in error(path)
    settings = offline(path)
    assert list(settings.channels) == ["ops"]
    assert settings.rules[0].notify == ["ops"]


def test_offline_an_unset_secret_file_is_not_read(tmp_path: Path) -> None:
    """A `*_file` under an unset variable stands in as the secret: no file is opened."""
    doc = document(api={"client_secret": None, "client_secret_file": "${CREDS}/pa"})
    settings = offline(write(tmp_path, doc))
    assert settings.api.client_secret is not None
    assert settings.api.client_secret.get_secret_value() == "${CREDS} is not set"


def test_offline_an_account_keeps_its_name(tmp_path: Path) -> None:
    """The accounts are still there by name, which status lists and ack --account takes."""
    doc = document(accounts={"uk": {"realm": "${UK_REALM}"}, "us": {"realm": "us"}})
    assert list(offline(write(tmp_path, doc)).accounts_resolved()) == ["uk", "us"]


@pytest.mark.parametrize(
    "changes",
    [
        {"state": {"path": "${STATE_DIR}/watcher.db"}},
        {"poll": {"interval": "${POLL}"}},
        {"rules": [{"name": "${RULE}", "notify": "ops"}]},
    ],
)
def test_offline_an_unset_variable_elsewhere_is_still_an_error(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    """What the state commands read (state, rules...) must be there for them too."""
    with pytest.raises(ConfigError, match="is not set"):
        offline(write(tmp_path, document(**changes)))
