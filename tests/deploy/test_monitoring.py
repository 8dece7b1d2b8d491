"""The monitoring of watcher itself in deploy/: the alerting rules (checked and unit-tested
by promtool), the Grafana dashboard (the fields Grafana requires; its queries parsed by
promtool) and the ServiceMonitor, all speaking of metrics the daemon really exports."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tool
from watcher.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
RULE_TESTS = PROMETHEUS / "alerts_test.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "watcher.json"
MONITORING = ROOT / "deploy" / "kubernetes" / "monitoring"
HA_SERVICE = ROOT / "deploy" / "kubernetes" / "ha" / "service.yaml"

# What the operator would otherwise write by hand (issue 17), and what the dashboard shows.
WANTED_ALERTS = {
    "WatcherNoSuccessfulPoll",
    "WatcherPollsFailing",
    "WatcherAlertsGivenUp",
    "WatcherOutboxBacklogGrowing",
    "WatcherNoLeader",
    "WatcherLeaseFlapping",
}
WANTED_PANELS = {
    "Polls by outcome",
    "API requests by outcome",
    "Events by kind",
    "Alerts by channel and outcome",
    "Outbox",
    "Delivery latency",
    "Leader of each account",
}
# PromQL words that are not metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
# The Grafana variables the queries use, as promtool can parse them.
VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$account": ".*", "${datasource}": ""}


def promtool() -> str:
    return require_tool("promtool", "prometheus")


def run(command: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def exported_names() -> set[str]:
    """Every series name a daemon's registry serves, with the suffixes the exposition
    gives each kind (a gauge set only later, such as the last poll's time, included)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in Metrics(["default"], ["hook"]).registry.collect():
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
    return names


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: its identifiers, less functions,
    keywords, label names (in matchers and in by/on/... lists) and durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][\w:]*", text):
        calls = text[match.end() :].lstrip().startswith("(")
        if not calls and match.group() not in KEYWORDS:
            found.add(match.group())
    return found


def test_metric_names_reads_what_promql_reads() -> None:
    """The name reader itself: functions, labels, keywords and variables are not names."""
    expr = (
        'sum by (job, account) (increase(watcher_polls_total{outcome!="ok", job=~"$job"}'
        "[$__rate_interval])) / on (job) group_left () max(up) > 0.5 and bool time()"
    )
    assert metric_names(expr) == {"watcher_polls_total", "up"}


# --- alerting rules --------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts the file, every rule of it."""
    result = run([promtool(), "check", "rules", str(RULES)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(rules())} rules found" in output, output


def test_alert_rules_unit_tests_pass() -> None:
    """`promtool test rules` runs alerts_test.yaml: the series in it make the rules fire
    (and stay quiet) when they should."""
    result = run([promtool(), "test", "rules", RULE_TESTS.name], cwd=PROMETHEUS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS" in output, output


def test_rule_unit_tests_prove_the_main_alerts_fire() -> None:
    """The unit tests expect "no successful poll" and "alerts given up" to fire, not only
    to stay quiet."""
    document = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    firing = {
        case["alertname"]
        for test in document["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert {"WatcherNoSuccessfulPoll", "WatcherAlertsGivenUp"} <= firing
    assert firing <= {rule["alert"] for rule in rules()}


def test_alert_rules_cover_the_operators_needs() -> None:
    """Each wanted alert is there, with a severity and a summary for whoever is paged."""
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) >= WANTED_ALERTS
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def test_alert_rules_read_only_exported_metrics() -> None:
    """Every metric a rule reads is one the daemon exports."""
    exported = exported_names()
    for rule in rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= exported, (rule["alert"], names - exported)


# --- Grafana dashboard -----------------------------------------------------------------


def test_dashboard_has_the_fields_grafana_requires() -> None:
    """A dashboard Grafana imports: title, uid, schemaVersion, templating, and panels with
    a unique id, a type, a title, a place on the 24-column grid, and Prometheus targets."""
    board = dashboard()
    assert board["title"] == "watcher"
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", board["uid"])
    assert isinstance(board["schemaVersion"], int)
    assert board["schemaVersion"] >= 36
    assert board["time"] == {"from": "now-6h", "to": "now"}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert panel["type"], panel
        assert panel["title"], panel
        grid = panel["gridPos"]
        assert set(grid) == {"x", "y", "w", "h"}, panel["title"]
        assert all(isinstance(v, int) and v >= 0 for v in grid.values()), panel["title"]
        assert grid["w"] > 0, panel["title"]
        assert grid["h"] > 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    """No two panels share a cell of the grid."""
    taken: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, (panel["title"], taken.get((x, y)))
                taken[(x, y)] = panel["title"]


def test_dashboard_shows_what_an_operator_looks_for() -> None:
    """Polls, API requests, events, alerts, outbox, delivery latency and leaders."""
    titles = {panel["title"] for panel in dashboard()["panels"]}
    assert titles >= WANTED_PANELS


def test_dashboard_reads_only_exported_metrics() -> None:
    """Every metric a panel or a variable reads is one the daemon exports."""
    exported = exported_names()
    for expr in queries():
        names = metric_names(expr)
        assert names, expr
        assert names <= exported, (expr, names - exported)
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            (name,) = re.findall(r"label_values\((\w+)", variable["definition"])
            assert name in exported, variable["name"]


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Every panel's query, its variables filled in, is PromQL that promtool parses (as
    the expression of a recording rule)."""
    exprs = queries()
    for variable, value in VARIABLES.items():
        exprs = [expr.replace(variable, value) for expr in exprs]
    assert not [expr for expr in exprs if "$" in expr]
    document = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": e} for n, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    result = run([promtool(), "check", "rules", str(path)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SUCCESS: {len(exprs)} rules found" in output, output


# --- ServiceMonitor --------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_service_monitor_scrapes_the_ha_service() -> None:
    """The ServiceMonitor selects the scale-out Service by its labels and scrapes /metrics
    on a port the Service names."""
    monitor = load(MONITORING / "servicemonitor.yaml")
    service = load(HA_SERVICE)
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "ServiceMonitor"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector
    assert selector.items() <= service["metadata"]["labels"].items()
    ports = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in ports
        assert endpoint["path"] == "/metrics"
    kustomization = load(MONITORING / "kustomization.yaml")
    assert kustomization["resources"] == ["servicemonitor.yaml"]
    beside = {p.name for p in MONITORING.glob("*.yaml")} - {"kustomization.yaml"}
    assert beside == {"servicemonitor.yaml"}


def test_service_monitor_kustomization_renders() -> None:
    """`kubectl kustomize` renders the monitoring folder: the ServiceMonitor, labelled
    part of watcher, its selector untouched."""
    kubectl = require_tool("kubectl", "kubectl")
    rendered = run([kubectl, "kustomize", str(MONITORING)])
    assert rendered.returncode == 0, rendered.stderr
    (document,) = yaml.safe_load_all(rendered.stdout)
    assert document["kind"] == "ServiceMonitor"
    assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "watcher"
    assert "app.kubernetes.io/part-of" not in document["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("path", [RULES, RULE_TESTS], ids=["rules", "rule-tests"])
def test_prometheus_files_are_plain_yaml(path: Path) -> None:
    """The files load as YAML without tags or anchors that other tools would trip on."""
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*[&*!]", text, flags=re.MULTILINE)
    assert yaml.safe_load(text)
