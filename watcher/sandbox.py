"""The Jinja2 sandbox that message templates run in, and its budget.

Templates come from configuration but see data from the API, so a template that
passes `check` may still blow up on a real job name. Three layers bound one:
- `lint` refuses, before use, what can be told from the source alone: repetition and
  powers past `MAX_ITEMS`, and loops whose iterations multiply past `MAX_LOOPS`;
- `Sandbox` stops the cheap bombs as they happen (`'x' * 10**9`, `range(10**7)`,
  `10 ** 10 ** 9`) with `OverBudget` instead of spending the memory first;
- `render_worker` runs every configured template in a child process with a time
  limit and a memory limit, and kills it past either, for what no rule can foresee.
Output is cut while it is produced, so an endless loop of text cannot fill memory.

A template renders for one message format (`formats.Format`): in Markdown and HTML,
whatever a `{{ ... }}` puts out is escaped for that format (the template's own text is
not), unless it is marked safe (`| safe`, `link(...)`, `| escape`), so a job's name
shows as itself. In text nothing is escaped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from watcher import formats
from watcher.formats import Format

MAX_RENDERED = 4000  # characters in a title or body; longer is cut with an ellipsis
MAX_ITEMS = 100_000  # items a repetition or a range may make
MAX_LOOPS = 100_000  # iterations of nested loops, counted from the source
MAX_POWER_BITS = 4096  # size of a number a power may make
_DATA_ITEMS = 1000  # what a loop over a variable (test runs, a name) is counted as
_RAW_LIMIT = 4 * MAX_RENDERED  # raw output kept before stripping and cutting


class OverBudget(Exception):
    """A template needed more time, memory or size than a message may take."""


class Unbounded(Exception):
    """`lint` found a template that is over budget whatever its data."""


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_ITEMS:
        raise OverBudget(f"range of {len(numbers)} items (at most {MAX_ITEMS})")
    return numbers


def _repeat(left: Any, right: Any) -> Any:
    for count, items in ((left, right), (right, left)):
        if not (isinstance(count, int) and isinstance(items, str | list | tuple)):
            continue
        if (size := count * len(items)) > MAX_ITEMS:
            raise OverBudget(f"repetition to {size} items (at most {MAX_ITEMS})")
    return left * right


def _power(left: Any, right: Any) -> Any:
    numbers = isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0
    if numbers and right * math.log2(abs(left)) > MAX_POWER_BITS:
        raise OverBudget(f"power past {MAX_POWER_BITS} bits")
    return left**right


class Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, strict about unknown variables, with repetition,
    powers and ranges bounded. Intercepted operators are not folded at compile time,
    so `'x' * 10**9` costs nothing until it is rendered, and then raises.

    Output is escaped for `to` by `finalize` rather than Jinja's autoescape, which
    knows only HTML; what `safe`, `escape` and `link` return passes as it is."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self, to: Format = Format.TEXT) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=_finalizer(to))
        self.globals["range"] = _bounded_range
        self.globals["link"] = _linker(to)
        self.filters["escape"] = self.filters["e"] = _escaper(to)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            return _repeat(left, right)
        if operator == "**":
            return _power(left, right)
        return super().call_binop(context, operator, left, right)


class Written(str):
    """Text already in the template's format (what `escape` and `link` return): output
    as it is. Jinja's own `safe` gives Markup, which passes the same way."""

    __slots__ = ()


def _finalizer(to: Format) -> Any:
    def finalize(value: Any) -> Any:
        if to is Format.TEXT or isinstance(value, Markup | Written):
            return value
        return formats.escape(str(value), to)  # str(): an undefined variable raises here

    return finalize


def _escaper(to: Format) -> Any:
    def escape(value: Any) -> Written:
        """`value` escaped for the format, once: escaping what is escaped keeps it."""
        if isinstance(value, Markup | Written):
            return Written(value)
        return Written(formats.escape(str(value), to))

    return escape


def _linker(to: Format) -> Any:
    def link(url: Any, label: Any = "") -> Written:
        """A link to `url` shown as `label`, in the format's own way (`formats.link`)."""
        return Written(formats.link(str(url or ""), str(label or ""), to))

    return link


_SANDBOXES = {to: Sandbox(to) for to in Format}


@functools.lru_cache(maxsize=256)
def compiled(source: str, to: Format = Format.TEXT) -> Template:
    """The template compiled in the sandbox for format `to` (syntax errors raise
    TemplateSyntaxError)."""
    return _SANDBOXES[to].from_string(source)


def parse(source: str) -> nodes.Template:
    return _SANDBOXES[Format.TEXT].parse(source)


def render_capped(template: Template, variables: dict[str, Any]) -> str:
    """The template's text, stripped, at most MAX_RENDERED characters; generation stops
    once enough text is in, so a loop that writes forever ends."""
    parts: list[str] = []
    size = 0
    for part in template.generate(variables):
        parts.append(part)
        size += len(part)
        if size > _RAW_LIMIT:
            break
    text = "".join(parts)[:_RAW_LIMIT].strip()
    return text if len(text) <= MAX_RENDERED else text[: MAX_RENDERED - 1] + "…"


def lint(tree: nodes.Template) -> str | None:
    """Why a parsed template is unbounded whatever its data, as far as the source
    tells; or None."""
    for node in tree.find_all((nodes.Mul, nodes.Pow)):
        if problem := _operator(node):
            return problem
    most = max(_loops([tree], 1), default=1)
    if most > MAX_LOOPS:
        return f"loops that may run {most} times (at most {MAX_LOOPS})"
    return None


def _constant(node: nodes.Node) -> int | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, int):
        return int(node.value)
    if isinstance(node, nodes.Neg | nodes.Pos) and (inner := _constant(node.node)) is not None:
        return -inner if isinstance(node, nodes.Neg) else inner
    return None


def _operator(node: nodes.Node) -> str | None:
    assert isinstance(node, nodes.Mul | nodes.Pow)
    if isinstance(node, nodes.Pow):
        exponent = _constant(node.right)
        if exponent is None or exponent > 64:
            return "a power with a large or data-dependent exponent"
        return None
    for side in (node.left, node.right):
        if (count := _constant(side)) is not None and count > MAX_ITEMS:
            return f"repetition {count} times (at most {MAX_ITEMS})"
    return None


def _trips(loop: nodes.For) -> int:
    """How many times a loop may run: a range of literals as written, a range of
    anything else as many as the sandbox allows, a variable as much data as a job has."""
    call = loop.iter
    if not (isinstance(call, nodes.Call) and isinstance(call.node, nodes.Name)):
        return _DATA_ITEMS
    if call.node.name != "range":
        return _DATA_ITEMS
    bounds = [_constant(arg) for arg in call.args]
    if call.kwargs or call.dyn_args or call.dyn_kwargs or None in bounds or not bounds:
        return MAX_ITEMS
    try:
        return len(range(*(b for b in bounds if b is not None)))
    except (TypeError, ValueError):  # range(1, 2, 0), too many arguments: fails at render
        return 1


def _loops(found: Iterable[nodes.Node], outer: int) -> Iterator[int]:
    """Iterations of every loop among `found` and below, multiplied by those of the
    loops it is in."""
    for node in found:
        if isinstance(node, nodes.For):
            inner = outer * _trips(node)
            yield inner
            yield from _loops([*node.body, *([node.test] if node.test else [])], inner)
            yield from _loops([node.iter, *node.else_], outer)
        else:
            yield from _loops(node.iter_child_nodes(), outer)
