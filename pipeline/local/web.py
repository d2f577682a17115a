"""What the twin serves over plain HTTP next to the WebSocket API, on the same port.

* ``/`` — the demo page (``pipeline/local/demo.html``), which uses the browser client module;
* ``/client.js`` — the browser client, one dependency-free ES module (``pipeline/client/client.js``);
* with ``auth=jwt``: ``/.well-known/openid-configuration`` and ``/.well-known/jwks.json``, the
  twin's OIDC issuer (:mod:`pipeline.local.oidc`).

These are the twin's additions: API Gateway serves none of them. They are registered before the
gateway's own routes, as exact paths, so ``/<stage>`` and ``@connections`` are unaffected.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from pipeline.local.oidc import DISCOVERY_PATH, JWKS_PATH, TwinIssuer

CLIENT_JS = Path(__file__).resolve().parent.parent / "client" / "client.js"
DEMO_HTML = Path(__file__).resolve().parent / "demo.html"
_NO_CACHE = {"Cache-Control": "no-store"}


def routes(stage: str, issuer: TwinIssuer | None) -> list[web.RouteDef]:
    """The twin's extra HTTP routes for *stage* (the OIDC ones only with an *issuer*)."""

    async def demo(request: web.Request) -> web.Response:
        page = DEMO_HTML.read_text(encoding="utf-8").replace("@@STAGE@@", stage)
        return web.Response(text=page, content_type="text/html", headers=_NO_CACHE)

    async def client(request: web.Request) -> web.Response:
        return web.Response(text=CLIENT_JS.read_text(encoding="utf-8"),
                            content_type="text/javascript", headers=_NO_CACHE)

    async def favicon(request: web.Request) -> web.Response:
        return web.Response(status=204)  # the demo page has no icon; a browser asks anyway

    table = [web.get("/", demo), web.get("/client.js", client), web.get("/favicon.ico", favicon)]
    if issuer is not None:
        current: TwinIssuer = issuer

        async def discovery(request: web.Request) -> web.Response:
            return web.json_response(current.discovery())

        async def jwks(request: web.Request) -> web.Response:
            return web.json_response(current.jwks())

        table += [web.get(DISCOVERY_PATH, discovery), web.get(JWKS_PATH, jwks)]
    return table
