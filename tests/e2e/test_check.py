"""`watcher check` as a user reads it: which file it read, and where each secret came
from (the file, an environment variable, a secret file), never the secret itself."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import (
    CLIENT_SECRET,
    HEADER_TOKEN,
    Hook,
    config_document,
    write_config,
)
from tests.e2e import proc
from tests.postgres import PASSWORD as PG_PASSWORD
from watcher.simulator.runner import SimulatorHandle


def secrets_section(out: str) -> list[str]:
    lines = out.splitlines()
    start = lines.index("secrets (where each came from; values are never shown):")
    return lines[start + 1 :]


async def test_check_names_the_file_and_each_secrets_origin(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """A secret from `${VAR}`, one inherited from the api block's `*_file`, a database
    password from `${VAR}`, the API token from a WATCHER_ override, a channel's password
    written in the file: each named by its key and its source."""
    secret_file = tmp_path / "pa-secret"
    secret_file.write_text(CLIENT_SECRET)
    doc = config_document(sim, tmp_path, {"hook": hook.url})
    del doc["api"]["client_secret"]
    doc["api"]["client_secret_file"] = str(secret_file)
    doc["accounts"] = {"uk": {"client_secret": "${UK_SECRET}"}, "us": {}}
    doc["state"] = {"url": "postgresql://watcher:${PG_PASS}@127.0.0.1:5432/watcher"}
    path = write_config(tmp_path / "watcher.yaml", doc)
    code, out = await proc.run(
        "check",
        "-c",
        str(path),
        UK_SECRET=CLIENT_SECRET,
        PG_PASS=PG_PASSWORD,
        WATCHER_SERVER__API_TOKEN=HEADER_TOKEN,
    )
    assert code == 0, out
    assert f"file: {path.resolve()} (given with -c)" in out.splitlines()[:2]
    assert secrets_section(out) == [
        "  accounts.uk.client_secret: environment variable UK_SECRET (${UK_SECRET} in the file)",
        f"  accounts.us.client_secret: the api block's: read from {secret_file}"
        " (api.client_secret_file, written in the file)",
        "  state.url: environment variable PG_PASS (${PG_PASS} in the file)",
        "  server.api_token: environment variable WATCHER_SERVER__API_TOKEN (an override)",
        "  channels.hook[0]: written in the file",
    ]


async def test_check_says_a_file_found_by_watcher_config(
    tmp_path: Path, sim: SimulatorHandle, hook: Hook
) -> None:
    """Without -c, the file WATCHER_CONFIG names; a secret overridden by WATCHER_API__..."""
    doc = config_document(sim, tmp_path, {"hook": hook.url})
    path = write_config(tmp_path / "watcher.yaml", doc)
    code, out = await proc.run(
        "check", WATCHER_CONFIG=str(path), WATCHER_API__CLIENT_SECRET=CLIENT_SECRET
    )
    assert code == 0, out
    assert f"file: {path.resolve()} (named by WATCHER_CONFIG)" in out
    assert "  api.client_secret: environment variable WATCHER_API__CLIENT_SECRET (an" in out
