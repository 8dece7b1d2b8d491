"""`watcher completion bash|zsh`: shell completion scripts written from the argparse
parser itself (watcher.arguments), so every command and option completes as it is
defined, with no extra package. Values complete where the parser knows them: an
option's choices, and files for the options whose metavar is FILE.

It only reads the parser, and never runs watcher at completion time: the scripts are
plain shell, quick on every Tab."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from dataclasses import dataclass

from watcher import __version__
from watcher.arguments import SHELLS

FILE = "FILE"  # the metavar of options whose value is a path
_WORD = re.compile(r"[\w.:/@+=-]+")  # what the bash script may hold unquoted


@dataclass(frozen=True)
class Option:
    flags: tuple[str, ...]
    help: str
    takes_value: bool  # False for flags (store_true, --help, --version)
    metavar: str
    choices: tuple[str, ...]
    repeatable: bool
    excludes: tuple[str, ...]  # its own flags and those of its mutually exclusive group

    @property
    def files(self) -> bool:
        return self.metavar == FILE


@dataclass(frozen=True)
class Positional:
    name: str
    help: str
    choices: tuple[str, ...]
    many: bool


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # () for watcher itself, ("silence", "add") for a verb
    help: str
    options: tuple[Option, ...]
    positionals: tuple[Positional, ...]
    commands: tuple[Command, ...]

    def walk(self) -> Iterator[Command]:
        yield self
        for command in self.commands:
            yield from command.walk()


def script(parser: argparse.ArgumentParser, shell: str) -> str:
    """The completion script for `shell` (one of SHELLS)."""
    tree = command_tree(parser)
    if shell == "bash":
        return bash(tree)
    if shell == "zsh":
        return zsh(tree)
    raise ValueError(f"no completion for {shell!r}; choose from {', '.join(SHELLS)}")


def command_tree(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = (), text: str = ""
) -> Command:
    """The parser as plain values: what both scripts are written from."""
    formatter = parser._get_formatter()
    options: list[Option] = []
    positionals: list[Positional] = []
    commands: list[Command] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, child in action.choices.items():
                commands.append(command_tree(child, (*path, name), helps.get(name, "")))
            continue
        help_text = " ".join(formatter._expand_help(action).split()) if action.help else ""
        choices = tuple(str(c) for c in action.choices or ())
        if not action.option_strings:
            many = action.nargs in ("*", "+", argparse.REMAINDER)
            name = action.metavar if isinstance(action.metavar, str) else action.dest
            positionals.append(Positional(name, help_text, choices, many))
            continue
        options.append(
            Option(
                flags=tuple(action.option_strings),
                help=help_text,
                takes_value=action.nargs != 0,
                metavar=action.metavar if isinstance(action.metavar, str) else action.dest.upper(),
                choices=choices,
                repeatable=isinstance(action, argparse._AppendAction),
                excludes=_excludes(parser, action),
            )
        )
    return Command(path, text, tuple(options), tuple(positionals), tuple(commands))


def _excludes(parser: argparse.ArgumentParser, action: argparse.Action) -> tuple[str, ...]:
    flags = list(action.option_strings)
    for group in parser._mutually_exclusive_groups:
        if action in group._group_actions:
            flags += [flag for other in group._group_actions for flag in other.option_strings]
    return tuple(dict.fromkeys(flags))


# --- bash ------------------------------------------------------------------------------


def _words(values: tuple[str, ...] | list[str]) -> str:
    for value in values:
        if not _WORD.fullmatch(value):
            raise ValueError(f"{value!r} cannot be completed as a plain word")
    return " ".join(values)


def _case(name: str, comment: str, entries: dict[str, str], default: str) -> list[str]:
    lines = [f"{name}() {{  # {comment}", '    case "$1" in']
    lines += [f"        {patterns}) REPLY={value} ;;" for patterns, value in entries.items()]
    return [*lines, f"        *) {default} ;;", "    esac", "}", ""]


def bash(tree: Command) -> str:
    """A script of four lookup functions (case statements written from the tree) and
    one completion function that reads the command line through them."""
    commands, options, positionals = {}, {}, {}
    for command in tree.walk():
        key = f'"{_words(list(command.path))}"'
        if command.commands:
            commands[key] = f'"{_words([c.path[-1] for c in command.commands])}"'
        options[key] = f'"{_words([f for o in command.options for f in o.flags])}"'
        choices = next((p.choices for p in command.positionals if p.choices), ())
        if choices:
            positionals[key] = f'"{_words(choices)}"'
    lines = [
        f"# bash completion for watcher {__version__}, written by `watcher completion bash`.",
        "# This shell:  source <(watcher completion bash)",
        "# Every shell: save it as ~/.local/share/bash-completion/completions/watcher",
        "",
        *_case("_watcher_commands", "the commands under the command path $1", commands, "REPLY=''"),
        *_case("_watcher_options", "the options of the command path $1", options, "REPLY=''"),
        *_case(
            "_watcher_positional", "the choices of the path's argument", positionals, "REPLY=''"
        ),
        *_case(
            "_watcher_value",
            'does "path|option" take a value? REPLY: its choices, or @files',
            _value_entries(tree),
            "return 1",
        ),
        _BASH_MAIN,
    ]
    return "\n".join(lines)


def _value_entries(tree: Command) -> dict[str, str]:
    """_watcher_value's cases: a flag that takes the same value wherever it appears is
    one pattern for every path; one that differs (--job: a file for explain, a job for
    ack) or takes no value somewhere gets a case per path."""
    replies: dict[str, dict[str, str | None]] = {}  # flag -> path -> REPLY, None: no value
    for command in tree.walk():
        key = " ".join(command.path)
        for option in command.options:
            reply = f'"{"@files" if option.files else _words(option.choices)}"'
            for flag in _words(list(option.flags)).split():
                replies.setdefault(flag, {})[key] = reply if option.takes_value else None
    entries: dict[str, str] = {}
    for flag, by_path in replies.items():
        found = set(by_path.values())
        if len(found) == 1 and None not in found:
            entries[f'*"|{flag}"'] = found.pop() or ""
            continue
        for key, value in by_path.items():
            if value is not None:
                entries[f'"{key}|{flag}"'] = value
    return entries


_BASH_MAIN = r"""_watcher() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local path="" word option="" i=1 REPLY=""
    # The command path: the words that name a command, skipping each option's value
    # (a value joined by "=" is three words here: "=" breaks words in COMP_WORDBREAKS).
    while [ "$i" -lt "$COMP_CWORD" ]; do
        word=${COMP_WORDS[i]}
        case $word in
            -*)
                if _watcher_value "$path|$word"; then
                    [ "${COMP_WORDS[i + 1]}" = "=" ] && i=$((i + 1))
                    i=$((i + 1))
                fi
                ;;
            *)
                _watcher_commands "$path"
                case " $REPLY " in *" $word "*) path=${path:+$path }$word ;; esac
                ;;
        esac
        i=$((i + 1))
    done
    if [ "$cur" = "=" ]; then
        option=$prev cur=""
    elif [ "$prev" = "=" ] && [ "$COMP_CWORD" -ge 2 ]; then
        option=${COMP_WORDS[COMP_CWORD - 2]}
    else
        option=$prev
    fi
    COMPREPLY=()
    if [ "$COMP_CWORD" -gt 1 ] && _watcher_value "$path|$option"; then
        if [ "$REPLY" = "@files" ]; then
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
        fi
        return 0
    fi
    case $cur in
        -*) _watcher_options "$path" ;;
        *)
            _watcher_commands "$path"
            [ -n "$REPLY" ] || _watcher_positional "$path"
            ;;
    esac
    mapfile -t COMPREPLY < <(compgen -W "$REPLY" -- "$cur")
}

complete -F _watcher watcher
"""


# --- zsh -------------------------------------------------------------------------------


def _quoted(text: str) -> str:
    """`text` inside single quotes, for zsh."""
    return "'" + text.replace("'", "'\\''") + "'"


def _bracketed(text: str) -> str:
    """A description for _arguments' [...]."""
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _message(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def _zsh_option(option: Option) -> str:
    if option.takes_value:
        if option.files:
            action = "_files"
        elif option.choices:
            action = f"({_words(option.choices)})"
        else:
            action = " "
        value = f":{_message(option.metavar)}:{action}"
    else:
        value = ""
    exclude = "" if option.repeatable else f"({' '.join(option.excludes)})"
    star = "*" if option.repeatable else ""
    spec = []
    for flag in option.flags:
        joined = "=" if option.takes_value and flag.startswith("--") else ""
        spec.append(_quoted(f"{exclude}{star}{flag}{joined}[{_bracketed(option.help)}]{value}"))
    return " \\\n        ".join(spec)


def _zsh_positional(index: int, positional: Positional) -> str:
    action = f"({_words(positional.choices)})" if positional.choices else " "
    where = "*" if positional.many else str(index)
    return _quoted(f"{where}:{_message(positional.help or positional.name)}:{action}")


def _function(command: Command) -> str:
    return "_watcher" + "".join("__" + part.replace("-", "_") for part in command.path)


def _zsh_function(command: Command) -> list[str]:
    specs = [_zsh_option(option) for option in command.options]
    specs += [_zsh_positional(i, p) for i, p in enumerate(command.positionals, start=1)]
    if command.commands:
        specs += ["'1: :->command'", "'*:: :->argument'"]
    lines = [f"{_function(command)}() {{"]
    if command.commands:
        lines += ['    local curcontext="$curcontext" state line', "    typeset -A opt_args"]
    flags = " -C" if command.commands else ""
    lines.append(f"    _arguments -s -S{flags} \\\n        " + " \\\n        ".join(specs))
    if command.commands:
        described = [_quoted(f"{c.path[-1]}:{c.help}") for c in command.commands]
        lines += [
            "    case $state in",
            "        command)",
            "            local -a commands",
            "            commands=(\n                " + "\n                ".join(described),
            "            )",
            "            _describe -t commands 'watcher command' commands",
            "            ;;",
            "        argument)",
            '            curcontext="${curcontext%:*:*}:watcher-$line[1]:"',
            "            case $line[1] in",
        ]
        lines += [f"                {c.path[-1]}) {_function(c)} ;;" for c in command.commands]
        lines += ["            esac", "            ;;", "    esac"]
    return [*lines, "}", ""]


def zsh(tree: Command) -> str:
    """A function a command, each one _arguments call with its options' descriptions
    (the help texts), handing the rest of the line to the chosen command's function."""
    lines = [
        "#compdef watcher",
        f"# zsh completion for watcher {__version__}, written by `watcher completion zsh`.",
        "# This shell (after compinit):  source <(watcher completion zsh)",
        "# Every shell: save it as _watcher in a folder on $fpath, before compinit runs",
        "",
    ]
    for command in tree.walk():
        lines += _zsh_function(command)
    # Sourced, it registers itself; autoloaded from $fpath, #compdef does that and the
    # file's body is the function's, so it completes at once.
    lines += [
        'if [ "$funcstack[1]" = "_watcher" ]; then',
        '    _watcher "$@"',
        "else",
        "    compdef _watcher watcher",
        "fi",
        "",
    ]
    return "\n".join(lines)
