"""The JSON API under /api/v1/ (SPEC "People in the loop")."""

from __future__ import annotations

from aiohttp import web

from watcher.web import Console


def mount(app: web.Application, console: Console) -> None:
    """Placeholder until the API lands: no routes."""
