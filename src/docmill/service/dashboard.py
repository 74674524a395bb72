"""The web dashboard: one static page (``/``) and its files (``/static/...``).

The files are package data (``service/dashboard/``), served as they are: no build
step, no CDN. They are public; the page asks for an API key and sends it as
``Authorization: Bearer`` on every ``/v1`` call. Every response carries a strict
Content-Security-Policy (scripts only from this origin, no inline script or style),
so even a rendering bug could not run a document's ``<script>``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import Response

from docmill.service.errors import ApiError

FILES = Path(__file__).with_name("dashboard")

# the only files served, with their types (a name not listed is a 404)
STATIC_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "job.js": "text/javascript; charset=utf-8",
    "kit.js": "text/javascript; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

# img-src blob:: page images are fetched with the key (a header) and shown by blob: URL
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


def _file(name: str, media_type: str) -> Response:
    try:
        body = (FILES / name).read_bytes()
    except OSError:
        raise ApiError(404, "not_found", f"no dashboard file {name}") from None
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


@router.get("/")
async def index() -> Response:
    return _file("index.html", "text/html; charset=utf-8")


@router.get("/static/{name}")
async def static(name: str) -> Response:
    media_type = STATIC_TYPES.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", f"no dashboard file {name}")
    return _file(name, media_type)
