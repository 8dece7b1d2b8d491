"""The package's metadata (pyproject.toml, LICENSE, CHANGELOG.md, py.typed) and the
container image's lock file (deploy/docker/requirements.lock), checked against each other
and against the code: what watcher imports is declared, what is declared is locked."""

from __future__ import annotations

import ast
import hashlib
import os
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions, requires
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

import watcher

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "watcher"
LOCK = ROOT / "deploy" / "docker" / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
# The Apache License 2.0 exactly as the ASF publishes it (LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


@cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def dependencies() -> list[Requirement]:
    return [Requirement(text) for text in pyproject()["project"]["dependencies"]]


def build_requirements() -> list[Requirement]:
    return [Requirement(text) for text in pyproject()["build-system"]["requires"]]


def imported_modules() -> set[str]:
    """The top-level names of every absolute import in watcher/, at any depth of the code
    (imports inside functions count: they run when that path is taken)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.partition(".")[0])
    return found


def third_party(modules: set[str]) -> set[str]:
    return {m for m in modules if m not in sys.stdlib_module_names and m != "watcher"}


def locked() -> dict[str, tuple[Version, int]]:
    """Each package of the lock file: its pinned version and how many hashes it carries."""
    pins: dict[str, tuple[Version, int]] = {}
    name = ""
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        pin = re.match(r"^([A-Za-z0-9._-]+)==([^ ;\\]+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            assert name not in pins, f"{name} is pinned twice"
            pins[name] = (Version(pin.group(2)), 0)
        elif line.strip().startswith("--hash=sha256:"):
            version, hashes = pins[name]
            pins[name] = (version, hashes + 1)
    return pins


def extra_requirements(requirement: Requirement) -> set[str]:
    """The names that requirement's extras bring (psycopg[binary] -> psycopg-binary), as
    the installed distribution's metadata states them."""
    names: set[str] = set()
    for text in requires(requirement.name) or []:
        extra = Requirement(text)
        for name in requirement.extras:
            environment = {**default_environment(), "extra": name}
            if extra.marker is not None and extra.marker.evaluate(environment):
                names.add(canonicalize_name(extra.name))
    return names


# --- metadata --------------------------------------------------------------------------


def test_license_file_is_the_declared_license() -> None:
    """pyproject declares Apache-2.0 (SPDX) and ships LICENSE, which is its exact text."""
    project = pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_bytes()
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256


def test_build_system_has_the_setuptools_that_reads_the_license_field() -> None:
    """The SPDX `license` string and `license-files` need setuptools 77 or newer."""
    (setuptools,) = build_requirements()
    assert setuptools.name == "setuptools"
    assert not setuptools.specifier.contains("76.9")
    assert setuptools.specifier.contains("77")


def test_version_is_written_once() -> None:
    """[project] takes its version from watcher.__version__, and writes none of its own."""
    project = pyproject()["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    dynamic = pyproject()["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "watcher.__version__"}
    assert str(Version(watcher.__version__)) == watcher.__version__  # PEP 440, normalised


def test_changelog_has_the_current_version() -> None:
    """CHANGELOG.md keeps the Keep a Changelog shape: Unreleased on top, then a section for
    the version the code says it is (a version bump without its entry fails here)."""
    headings = re.findall(
        r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M
    )
    assert headings[0] == "Unreleased"
    assert watcher.__version__ in headings


def test_package_ships_py_typed() -> None:
    """py.typed is there and is package data, so the wheel tells type checkers it is typed."""
    assert (PACKAGE / "py.typed").is_file()
    assert "py.typed" in pyproject()["tool"]["setuptools"]["package-data"]["watcher"]
    assert "Typing :: Typed" in pyproject()["project"]["classifiers"]


def test_classifiers_and_urls() -> None:
    """The Python classifiers match requires-python; the URLs point at the sources."""
    project = pyproject()["project"]
    minimum = Version(re.sub(r"^>=", "", project["requires-python"]))
    versions = [
        c.rsplit(" :: ", 1)[1]
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    ]
    assert versions
    assert min(Version(v) for v in versions) == minimum
    assert set(project["urls"]) >= {"Source", "Issues", "Changelog", "Documentation"}
    for url in project["urls"].values():
        assert url.startswith(project["urls"]["Source"]), url


# --- dependencies ----------------------------------------------------------------------


def test_every_imported_package_is_declared() -> None:
    """Each third-party module that watcher/ imports comes from a distribution that
    pyproject declares itself, not one that merely arrives with another."""
    declared = {canonicalize_name(r.name) for r in dependencies()}
    distributions = packages_distributions()
    modules = third_party(imported_modules())
    assert {"yaml", "yarl", "multidict", "aiohttp"} <= modules  # the walk finds them
    undeclared = {}
    for module in sorted(modules):
        names = {canonicalize_name(d) for d in distributions.get(module, [])}
        assert names, f"{module} is imported but no installed distribution provides it"
        if not names & declared:
            undeclared[module] = sorted(names)
    assert undeclared == {}, "imported, not declared in pyproject's dependencies"


# --- the image's lock file -------------------------------------------------------------


def test_lock_pins_every_dependency_within_its_specifier() -> None:
    """Every declared dependency, and what its extras bring, and setuptools for the build,
    is locked at a version that pyproject's specifier allows."""
    pins = locked()
    for requirement in [*dependencies(), *build_requirements()]:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is declared but not locked: run deploy/docker/lock"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in the lock, pyproject wants {requirement.specifier}: "
            "run deploy/docker/lock"
        )
        for brought in extra_requirements(requirement):
            assert brought in pins, f"{brought} ({requirement}) is not locked"


def test_lock_has_hashes_for_every_package() -> None:
    """Each pin carries its files' sha256, which --require-hashes insists on."""
    pins = locked()
    assert len(pins) > len(dependencies())  # the transitive ones are there too
    assert [name for name, (_, hashes) in pins.items() if hashes == 0] == []


def test_lock_script_resolves_for_the_image(tmp_path: Path) -> None:
    """deploy/docker/lock asks uv for the Dockerfile's Python (which requires-python
    allows), with hashes, for pyproject's dependencies and its build requirements."""
    found = re.search(
        r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)\.\d+-", DOCKERFILE.read_text("utf-8"), re.M
    )
    assert found is not None
    image_python = found.group(1)
    assert SpecifierSet(pyproject()["project"]["requires-python"]).contains(image_python)
    uv = tmp_path / "uv"  # says what it was asked, and resolves nothing
    uv.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\necho ---\ncat\n', encoding="utf-8")
    uv.chmod(0o755)
    result = subprocess.run(
        [str(ROOT / "deploy" / "docker" / "lock")],
        env={**os.environ, "UV": str(uv)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    arguments, _, stdin = result.stdout.partition("---\n")
    asked = arguments.split()
    assert asked[:4] == ["pip", "compile", "pyproject.toml", "-"]
    assert asked[asked.index("--python-version") + 1] == image_python
    assert {"--generate-hashes", "--universal"} <= set(asked)
    assert asked[asked.index("--output-file") + 1] == "deploy/docker/requirements.lock"
    assert [Requirement(line) for line in stdin.split()] == build_requirements()


@pytest.mark.parametrize("name", ["lock", "build"])
def test_deploy_scripts_are_executable(name: str) -> None:
    """deploy/docker/lock and build run as they are, and say what they need."""
    script = ROOT / "deploy" / "docker" / name
    assert script.stat().st_mode & 0o111
    assert script.read_text(encoding="utf-8").startswith("#!/bin/sh\n")
