"""Serve the pages' static files from inside the package: ``GET /`` gives a page, ``/_ui/...`` the rest.

Why not aiohttp's ``add_static``: the file list is fixed and known (what ``static/`` holds), so a name is
looked up in that list and nothing on the request path ever reaches the filesystem; each file is read once
and kept (the pages are small), and every answer says ``no-cache`` so a page updated by an upgrade is not
served stale from the browser's cache next to a new server.

A page also says what it may load (``Content-Security-Policy``): scripts, styles, streams and fetches
from its own server only, no plugin, no form posted elsewhere, and no framing by another site. The
pages put every value they show into the DOM as text; the policy is the second line should one ever
slip through as markup (no inline or foreign script runs), and no other site can frame the console
and lure a click onto its controls. Inline styles stay allowed: the charts set them.
"""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from importlib import resources

from aiohttp import web

#: Where the pages' assets are served from, on every server that has pages.
ASSET_PREFIX = "/_ui"

_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".svg": "image/svg+xml"}

#: What a page may load (see the module's docstring); ``data:`` images for the empty favicon.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _static_files() -> dict[str, bytes]:
    """Every file under ``static/`` by its path relative to it (``vendor/uplot/uPlot.iife.min.js``)."""
    root = resources.files("gatewayd.webui") / "static"
    files: dict[str, bytes] = {}
    stack = [("", root)]
    while stack:
        prefix, directory = stack.pop()
        for entry in directory.iterdir():
            name = f"{prefix}{entry.name}"
            if entry.is_dir():
                stack.append((f"{name}/", entry))
            elif not entry.name.startswith("."):
                files[name] = entry.read_bytes()
    return files


@lru_cache(maxsize=1)
def static_files() -> dict[str, bytes]:
    """The files, read once per process."""
    return _static_files()


def _response(name: str) -> web.Response:
    body = static_files().get(name)
    if body is None:
        raise web.HTTPNotFound(text=f"no such page asset: {name}")
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = _TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if content_type == "text/html":
        headers["Content-Security-Policy"] = PAGE_POLICY
    return web.Response(
        body=body,
        content_type=content_type,
        charset="utf-8" if content_type.startswith("text/") else None,
        headers=headers,
    )


def page_routes(page: str) -> list[web.RouteDef]:
    """``GET /`` answering the page ``page`` (a file in ``static/``, e.g. ``console.html``), and every
    asset under ``/_ui/``."""
    if page not in static_files():
        raise LookupError(f"no page {page!r} in gatewayd/webui/static")

    async def index(request: web.Request) -> web.StreamResponse:
        return _response(page)

    async def asset(request: web.Request) -> web.StreamResponse:
        return _response(request.match_info["name"])

    return [web.get("/", index), web.get(ASSET_PREFIX + "/{name:.+}", asset)]
