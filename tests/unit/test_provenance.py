"""Where each secret came from, as `watcher check` says it: a table of configurations."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher import config
from watcher.provenance import origins

SECRET = "pv-SECRET-5e6f7a"
API: dict[str, Any] = {"realm": "r", "client_id": "c"}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("WATCHER_"):
            monkeypatch.delenv(name)


def said(tmp_path: Path, doc: dict[str, Any], env: dict[str, str]) -> dict[str, str]:
    path = tmp_path / "watcher.yaml"
    path.write_text(yaml.safe_dump(doc))
    loaded = config.load_from(str(path), env)
    found = {o.key: o.source for o in origins(loaded, {**os.environ, **env})}
    assert SECRET not in repr(found)
    return found


@pytest.mark.parametrize(
    ("doc", "env", "expected"),
    [
        ({"api": {**API, "access_token": SECRET}}, {}, {"api.access_token": "written in the file"}),
        (
            {"api": {**API, "client_secret": "${S:-" + SECRET + "}"}},
            {},
            {"api.client_secret": "the default of ${S} in the file (S is not set)"},
        ),
        (
            {"api": {**API, "client_secret": "${S}"}},
            {"S": SECRET},
            {"api.client_secret": "environment variable S (${S} in the file)"},
        ),
        (
            {
                "api": {**API, "access_token": "t"},
                "channels": {"a": ["json://localhost", f"json://u:{SECRET}@localhost"]},
            },
            {},
            {
                "api.access_token": "written in the file",
                "channels.a[0]": "written in the file",
                "channels.a[1]": "written in the file",
            },
        ),
        (
            {"api": {**API, "access_token": "t"}, "channels": {"a": "json://localhost"}},
            {},
            {"api.access_token": "written in the file", "channels.a[0]": "written in the file"},
        ),
    ],
)
def test_each_secret_is_named_with_its_source(
    tmp_path: Path, doc: dict[str, Any], env: dict[str, str], expected: dict[str, str]
) -> None:
    """A literal, a `${VAR}` default, a set `${VAR}`; every channel URL (a secret as a
    whole), written as one URL or a list."""
    assert said(tmp_path, doc, env) == expected


def test_a_section_given_as_json_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`WATCHER_SERVER='{"api_token": ...}'` is the section's override, as JSON."""
    monkeypatch.setenv("WATCHER_SERVER", f'{{"api_token": "{SECRET}"}}')
    found = said(tmp_path, {"api": {**API, "access_token": "t"}}, {})
    assert found["server.api_token"] == (
        "environment variable WATCHER_SERVER (an override, as JSON)"
    )


def test_a_secret_file_named_by_an_override_is_shown_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The path of a secret file is not a secret: it is shown, with where it was named."""
    secret = tmp_path / "token"
    secret.write_text(SECRET)
    monkeypatch.setenv("WATCHER_SERVER__API_TOKEN_FILE", str(secret))
    found = said(tmp_path, {"api": {**API, "access_token": "t"}}, {})
    assert found["server.api_token"] == (
        f"read from {secret} (server.api_token_file, environment variable"
        " WATCHER_SERVER__API_TOKEN_FILE (an override))"
    )
