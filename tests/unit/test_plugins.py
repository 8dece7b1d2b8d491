"""apprise loads only the plugins of the schemes used, and accepts and masks every URL as
it does with all of them loaded. Each case runs in a fresh interpreter: apprise's
registry is one per process, and a full load cannot be undone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A URL of every scheme family the README names, plus the webhook forms apprise reads
# from https:// (no scheme of its own: found only with every plugin loaded).
DECLARED = [
    "json://user:hook-Pw-123@hooks.example.com/perf/alerts",
    "jsons://hooks.example.com/perf?+Authorization=Bearer%20tok3n-xyz987ab",
    "form://user:hook-Pw-123@hooks.example.com/perf",
    "forms://hooks.example.com/perf?-fld=formGet8765x",
    "xml://user:hook-Pw-123@hooks.example.com/perf",
    "xmls://hooks.example.com/perf?+X-Token=xmlTok3n4567",
    "mailto://alerts:Pa55-word-x9@example.com?to=oncall@example.com",
    "mailtos://alerts:Pa55-word-x9@smtp.example.com?to=oncall@example.com",
    "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F/#perf-alerts",
    "discord://1234567890123456789/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "workflows://prod-12.westus.logic.azure.com:443/8f2e4c1a9b7d4e6f/Xq3vB9kLmN2pR7sT1uW4",
    "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-1001234567/",
    "mmost://mattermost.example.com/3ccdd113474722377935511fc85d3dd4",
    "mmosts://mattermost.example.com/3ccdd113474722377935511fc85d3dd4",
    "ntfy://alerts:Pa55-word-x9@ntfy.example.com/perf-topic",
    "ntfys://tk_AbCdEf0123456789xyz@ntfy.example.com/perf-topic",
    "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
    "pagerduty://0123456789abcdef0123456789abcdef@y_zQ3Kwh8sVfuDC9Rnx-",
    "gotify://gotify.example.com/AbCdEfGh12345",
    "apprise://apprise.example.com/cfgkey?+X-Auth=apiTok3n7788",
    "mailtos://user:pw@",  # a scheme that loads, in a URL its plugin refuses
]
NATIVE = [
    "https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7F",
    "https://discord.com/api/webhooks/1234567890123456789/AbCdEfGhIjKlMnOpQrStUvWxYz0123",
]
REFUSED = [
    "msteams://contoso/a1b2c3d4-e5f6@b1b2c3d4-e5f6/0123456789abcdef/c1b2c3d4",  # gone in 2.3
    "nosuchscheme://user:pw@example.com/x",
]


def run(code: str, *args: str) -> Any:
    """`code` in a fresh interpreter with `args` as sys.argv[1:]; what it prints, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    return json.loads(done.stdout)


# Each URL as apprise alone takes it, all its plugins loaded: its private form, or None.
APPRISE_ALONE = """
import json, sys, apprise
out = []
for url in sys.argv[1:]:
    service = apprise.Apprise()
    out.append(service.urls(privacy=True) if service.add(url) else None)
print(json.dumps(out))
"""

# The same through `plugins.target`, and whether the registry was still narrow after
# each URL (and how many plugin modules were imported by then).
THROUGH_PLUGINS = """
import json, sys
from watcher import plugins
out = []
for url in sys.argv[1:]:
    service = plugins.target(url)
    loaded = [m for m in sys.modules if m.startswith("apprise.plugins.") and m.count(".") == 2]
    out.append([service.urls(privacy=True) if service else None, plugins._narrowed(), len(loaded)])
print(json.dumps(out))
"""


def test_declared_schemes_load_their_plugin_alone_and_mask_as_apprise_does() -> None:
    """Every documented scheme is accepted (or refused) as apprise alone does, its private
    form is apprise's own, and the registry holds only the plugins asked for."""
    expected = run(APPRISE_ALONE, *DECLARED)
    got = run(THROUGH_PLUGINS, *DECLARED)
    assert [masked for masked, _, _ in got] == expected
    assert expected.count(None) == 1
    assert all(narrow for _, narrow, _ in got)
    assert got[-1][2] <= len(DECLARED)  # of ~190: the ones asked for (and base)


@pytest.mark.parametrize("url", NATIVE + REFUSED)
def test_other_urls_fall_back_to_the_full_load(url: str) -> None:
    """A URL whose scheme no plugin declares (a service's own https:// webhook, a scheme
    apprise dropped or never had) is taken or refused exactly as apprise alone does, after
    a json:// channel has narrowed the registry."""
    expected = run(APPRISE_ALONE, DECLARED[0], url)
    got = run(THROUGH_PLUGINS, DECLARED[0], url)
    assert [masked for masked, _, _ in got] == expected
    assert [narrow for _, narrow, _ in got] == [True, False]  # narrow, then everything
    assert (expected[1] is None) == (url in REFUSED)


def test_a_json_channel_imports_few_plugin_modules() -> None:
    """After a json:// channel only its plugin module is imported, not apprise's ~190."""
    got = run(
        """
import json, sys
from watcher.settings import _channel_problem
problem = _channel_problem("json://127.0.0.1:9/hook")
print(json.dumps([problem, sorted(m for m in sys.modules if m.startswith("apprise.plugins."))]))
"""
    )
    assert got == [None, ["apprise.plugins.base", "apprise.plugins.custom_json"]]


def test_an_unknown_scheme_is_a_clear_error() -> None:
    """Checked through the narrow path, a scheme that no plugin has is named in the error."""
    got = run(
        """
import json
from watcher.settings import _channel_problem
print(json.dumps([_channel_problem("json://h/x"), _channel_problem("nosuch://u:pw@h/x")]))
"""
    )
    assert got == [None, "not a valid apprise URL (scheme 'nosuch')"]


def test_declared_schemes_agree_with_apprises_registry() -> None:
    """Where the plugins' sources name a scheme's module, it is the module apprise itself
    registers for that scheme."""
    got = run(
        """
import json
from apprise.manager_plugins import NotificationManager
from watcher import plugins
manager = NotificationManager()
manager.load_modules()
real = {s: manager[s].__module__.split(".")[2] for s in manager.schemas()}
print(json.dumps([plugins.declared(), real]))
"""
    )
    declared, real = got
    assert {scheme: real.get(scheme) for scheme in declared} == declared
    assert len(declared) > 0.9 * len(real)
