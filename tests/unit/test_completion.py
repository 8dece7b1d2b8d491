"""`watcher completion bash|zsh`: the scripts, loaded into the real shells, complete
watcher's commands, options and values as the parser defines them."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.e2e import proc
from watcher import completion
from watcher.arguments import parser

# A bash function that completes the words given (the last one at the cursor) and prints
# what the completion function offers, one per line.
COMPLETE = """
complete_words() {
    COMP_WORDS=("$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
    COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    _watcher
    printf '%s\\n' "${COMPREPLY[@]}"
}
"""


@pytest.fixture(scope="module")
def path_with_watcher(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A PATH whose `watcher` is this checkout's, as a shell user would call it."""
    folder = tmp_path_factory.mktemp("bin")
    shim = folder / "watcher"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m watcher "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def shell(command: list[str], path: str, cwd: Path | None = None) -> str:
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=proc.env(PATH=path),
        cwd=cwd,
        check=False,
        timeout=120,  # a shell left waiting fails the test rather than hanging the suite
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    return result.stdout


@pytest.fixture(scope="module")
def scripts(path_with_watcher: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with what `watcher completion bash` and `zsh` print (bash, _watcher)."""
    folder = tmp_path_factory.mktemp("completion")
    for name, shell_name in (("bash", "bash"), ("_watcher", "zsh")):
        text = shell(["watcher", "completion", shell_name], path_with_watcher)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def bash_complete(scripts: Path, *words: str, cwd: Path | None = None) -> list[str]:
    script = f"source {scripts / 'bash'}\n{COMPLETE}\ncomplete_words watcher"
    return shell(["bash", "-c", f'{script} "$@"', "bash", *words], "/usr/bin:/bin", cwd).split()


def test_bash_registers_the_completion(path_with_watcher: str) -> None:
    """Sourced, the script tells bash to complete `watcher` with its function."""
    registered = shell(
        ["bash", "-c", "source <(watcher completion bash); complete -p watcher"],
        path_with_watcher,
    )
    assert registered.strip() == "complete -F _watcher watcher"


@pytest.mark.parametrize(
    ("words", "offered"),
    [
        (["si"], ["silence", "simulate"]),
        (["comp"], ["completion"]),
        (["run", "--d"], ["--dry-run"]),
        (["silence", ""], ["add", "list", "expire"]),
        (["silence", "add", "--c"], ["--config", "--comment"]),
        (["--log-format", ""], ["json", "console"]),
        (["--log-level", "=", "w"], ["warning"]),  # --log-level=w: bash splits at "="
        (["status", "--log-level", "e"], ["error"]),
        (["--log-format", "json", "st"], ["status"]),  # an option's value is no command
        (["-c", "watcher.yaml", "ch"], ["check"]),
        (["explain", "--event", ""], ["transition", "recovered"]),
        (["completion", ""], ["bash", "zsh"]),
        (["history", "--channel", ""], []),  # a free value: nothing to guess
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bash_completes_commands_options_and_values(
    scripts: Path, words: list[str], offered: list[str]
) -> None:
    """Commands at any depth, each command's own options, and an option's choices."""
    assert bash_complete(scripts, *words) == offered


@pytest.mark.parametrize("option", ["--config", "-c"])
@pytest.mark.parametrize("command", ["check", "explain"])
def test_bash_completes_files_for_file_options(
    scripts: Path, tmp_path: Path, command: str, option: str
) -> None:
    """-c/--config and explain's --job (FILE) complete file names."""
    (tmp_path / "watcher.yaml").write_text("", encoding="utf-8")
    (tmp_path / "job.json").write_text("{}", encoding="utf-8")
    assert bash_complete(scripts, command, option, "wa", cwd=tmp_path) == ["watcher.yaml"]
    if command == "explain":
        assert bash_complete(scripts, command, "--job", "j", cwd=tmp_path) == ["job.json"]


def test_ack_job_is_no_file(scripts: Path, tmp_path: Path) -> None:
    """ack's --job is a job's sref, not a file: only explain's --job completes files."""
    (tmp_path / "job.json").write_text("{}", encoding="utf-8")
    assert bash_complete(scripts, "ack", "--job", "j", cwd=tmp_path) == []


def zsh() -> str:
    return require_tool("zsh", "zsh")


def test_zsh_script_parses_and_registers(scripts: Path, tmp_path: Path) -> None:
    """zsh -n reads the script without an error; sourced after compinit, or autoloaded
    from $fpath, it is the completion of `watcher`."""
    binary = zsh()
    script = scripts / "_watcher"
    shell([binary, "-n", str(script)], "/usr/bin:/bin")
    init = f"autoload -Uz compinit && compinit -u -d {tmp_path}/dump"
    show = "print -r -- $_comps[watcher]"
    sourced = shell([binary, "-f", "-c", f"{init}; source {script}; {show}"], "/usr/bin:/bin")
    assert sourced.strip() == "_watcher"
    fpath = f"fpath=({scripts} $fpath)"
    autoloaded = shell([binary, "-f", "-c", f"{fpath}; {init}2; {show}"], "/usr/bin:/bin")
    assert autoloaded.strip() == "_watcher"


# Types each line (the arguments) into an interactive zsh on a pseudo-terminal, then Tab,
# then a key whose widget writes the line as completion left it into FOLDER/lines. The
# last command's output (which its echo cannot match: the quotes split it) says that
# every line has been handled.
ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty shell zsh -f -i
zpty -w shell "PS1='> '; autoload -Uz compinit; compinit -u -d FOLDER/dump"
zpty -w shell "source FOLDER/_watcher"
zpty -w shell 'dump() { print -r -- "[$BUFFER]" >> FOLDER/lines; BUFFER=""; }'
zpty -w shell 'zle -N dump; bindkey "^X" dump'
for line in "$@"; do
    zpty -w -n shell "$line"$'\t'$'\x18'
done
zpty -w shell "print ALL''-DONE"
zpty -r shell out '*ALL-DONE*'
zpty -d shell
cat FOLDER/lines
"""


def test_zsh_completes_as_typed(scripts: Path, tmp_path: Path) -> None:
    """In an interactive zsh, Tab completes a command, a verb, an option and a value."""
    binary = zsh()
    (tmp_path / "_watcher").write_bytes((scripts / "_watcher").read_bytes())
    typed = {
        "watcher sil": "watcher silence ",
        "watcher silence ad": "watcher silence add ",
        "watcher run --dr": "watcher run --dry-run ",
        "watcher --log-format js": "watcher --log-format json ",
        "watcher explain --event=re": "watcher explain --event=recovered ",
        "watcher completion z": "watcher completion zsh ",
    }
    driver = ZSH_DRIVER.replace("FOLDER", str(tmp_path))
    lines = shell([binary, "-f", "-c", driver, "zsh", *typed], "/usr/bin:/bin")
    assert lines.splitlines() == [f"[{done}]" for done in typed.values()]


# --- the walk, on a parser of the test's own -------------------------------------------


def small_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="watcher")
    top.add_argument("--colour", choices=["auto", "never"], help="when to colour")
    sub = top.add_subparsers(dest="command")
    one = sub.add_parser("load", help="load [things]: it's 'quoted'")
    one.add_argument("--from", dest="source", metavar="FILE", help="where from")
    one.add_argument("--tag", action="append", help="repeatable")
    group = one.add_mutually_exclusive_group()
    group.add_argument("--fast", action="store_true", help="quickly")
    group.add_argument("--slow", action="store_true", help="slowly")
    one.add_argument("names", nargs="*", help="what to load")
    return top


def test_command_tree_reads_the_parser() -> None:
    """Commands, flags and values, choices, FILE options, repeatable and exclusive ones."""
    tree = completion.command_tree(small_parser())
    assert [c.path for c in tree.walk()] == [(), ("load",)]
    (load,) = tree.commands
    assert load.help == "load [things]: it's 'quoted'"
    options = {o.flags[-1]: o for o in load.options}
    assert options["--from"].files
    assert options["--from"].takes_value
    assert options["--tag"].repeatable
    assert not options["--fast"].takes_value
    assert options["--fast"].excludes == ("--fast", "--slow")
    assert tree.options[-1].choices == ("auto", "never")
    assert load.positionals == (completion.Positional("names", "what to load", (), True),)


def test_zsh_script_of_awkward_help_parses(tmp_path: Path) -> None:
    """Brackets, quotes and colons in help texts are escaped for zsh."""
    binary = zsh()
    script = tmp_path / "_watcher"
    script.write_text(completion.script(small_parser(), "zsh"), encoding="utf-8")
    subprocess.run([binary, "-n", str(script)], check=True)


def test_bash_refuses_a_word_it_cannot_quote() -> None:
    """A choice with a space would split in the script: the walk says so instead."""
    odd = argparse.ArgumentParser(prog="watcher")
    odd.add_argument("--mode", choices=["a b"], help="mode")
    with pytest.raises(ValueError, match="'a b' cannot be completed"):
        completion.script(odd, "bash")


def test_every_command_is_in_both_scripts() -> None:
    """The scripts are written from watcher's parser: each command and option is there."""
    tree = completion.command_tree(parser())
    bash_script = completion.script(parser(), "bash")
    zsh_script = completion.script(parser(), "zsh")
    for command in tree.walk():
        for option in command.options:
            for flag in option.flags:
                assert flag in bash_script
                assert f"{flag}[" in zsh_script or f"{flag}=[" in zsh_script
        if command.path:
            assert f'"{" ".join(command.path)}")' in bash_script
            assert f"'{command.path[-1]}:" in zsh_script


def test_unknown_shell_is_a_usage_error(path_with_watcher: str) -> None:
    """`watcher completion fish` exits 64 naming the shells there are."""
    result = subprocess.run(
        ["watcher", "completion", "fish"],
        capture_output=True,
        text=True,
        env=proc.env(PATH=path_with_watcher),
        check=False,
    )
    assert result.returncode == 64
    assert "invalid choice: 'fish'" in result.stderr
    assert "bash" in result.stderr
    assert "zsh" in result.stderr
