"""The live ops dashboard: ``GET /`` and its assets, from ``shopstream/dashboard/``.

The page holds no data: its script reads the JSON routes with the viewer's read key. So the
page and its assets are open like the probes (``http_auth.OPEN_PATHS``), and everything it
needs comes from this API, nothing from other hosts, which the Content-Security-Policy says.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from shopstream.http_common import ApiContext

ASSET_DIR = Path(__file__).parent / "dashboard"
#: Route -> (file in ASSET_DIR, content type).
ASSETS = {
    "/": ("index.html", "text/html"),
    "/dashboard/app.js": ("app.js", "text/javascript"),
    "/dashboard/draw.js": ("draw.js", "text/javascript"),
    "/dashboard/money.js": ("money.js", "text/javascript"),
    "/dashboard/style.css": ("style.css", "text/css"),
}
#: The page loads only what this API serves; no-cache so an upgraded API serves its own page.
HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def setup(app: web.Application, ctx: ApiContext) -> None:
    """Read the assets once (a missing file fails at start, not at the first visit)."""
    for route, (name, content_type) in ASSETS.items():
        body = (ASSET_DIR / name).read_bytes()

        async def serve(_: web.Request, body: bytes = body,
                        content_type: str = content_type) -> web.Response:
            return web.Response(body=body, content_type=content_type, charset="utf-8",
                                headers=HEADERS)

        app.router.add_get(route, serve)
