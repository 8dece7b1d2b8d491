"""watcher's command line as argparse holds it: every command and every option says
what it is for in --help."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from watcher.arguments import parser


def parsers(
    top: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, top
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from parsers(child, (*path, name))


def test_every_option_and_argument_has_help() -> None:
    """No option or positional argument of any command is left without a help text."""
    bare = [
        f"watcher {' '.join(path)} {action.option_strings or action.dest}".replace("  ", " ")
        for path, command in parsers(parser())
        for action in command._actions
        if not isinstance(action, argparse._SubParsersAction) and not action.help
    ]
    assert bare == []


def test_every_command_has_help() -> None:
    """Each command and verb has the one line that `watcher --help` lists it with."""
    bare = [
        f"watcher {' '.join(path)} {choice.dest}"
        for path, command in parsers(parser())
        for action in command._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
        if not choice.help
    ]
    assert bare == []
    names = {path[-1] for path, _ in parsers(parser()) if path}
    assert {"completion", "explain", "silence", "add"} <= names


def test_explain_job_is_a_file() -> None:
    """explain's --job names a file holding one job record as JSON, and says so."""
    ((_, explain),) = [(p, c) for p, c in parsers(parser()) if p == ("explain",)]
    (job,) = [a for a in explain._actions if "--job" in a.option_strings]
    assert job.metavar == "FILE"
    assert job.help is not None
    assert job.help.startswith("a file holding one job record as JSON")
    assert "--job FILE" in explain.format_help()
