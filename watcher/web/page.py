"""The status page at / (SPEC "People in the loop")."""

from __future__ import annotations

from aiohttp import web

from watcher.web import Console


def mount(app: web.Application, console: Console) -> None:
    """Placeholder until the page lands: no routes."""
