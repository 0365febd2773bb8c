"""The console's web application (Starlette, served by uvicorn): the page and its JSON API.

    GET  /                    the page (server-rendered HTML, the diagram as inline SVG)
    GET  /view                its live sections alone, which the page's script fetches
                              once a second (:func:`zdm.console.page.render_live`)
    GET  /static/console.js   that script (vendored in the package: no CDN, no build step)
    GET  /api/state           :func:`zdm.console.model.console_state`; the CSRF token in the
                              ``X-CSRF-Token`` response header
    POST /api/phase/advance   {"operator", "why"?, "to"?, "confirm_clients_on_proxy"?,
                               "confirm_clients_on_target"?, "skip_async_reads"?}
    POST /api/phase/rollback  {"operator", "why"?, "to"?}

Theory of operation: each route checks the request on the event loop (host, token, CSRF,
reads the body), then runs its handler, a plain function, on Starlette's thread pool: the
state stores and the phase machine block.  One look at the migration serves every request
for ``LOOK_TTL_S`` (several open pages each polling once a second read the state once), and
an action forgets it, so the page shows its effect at the next poll.  An action answers 200 when
the phase moved, 409 with the machine's reasons when it was refused (nothing changed), 400
when the request is malformed.

Security, in the order it is checked:
- ``Host`` must be one the console serves under (loopback names by default): a page of
  another site that rebinds its DNS name to 127.0.0.1 gets 400, never the state.
- With a bearer token configured (required off loopback, see the CLI), every route answers
  401 without it: ``Authorization: Bearer TOKEN``, or the cookie set by opening
  ``/?token=TOKEN`` once (HttpOnly, SameSite=Strict).
- Every POST needs the ``X-CSRF-Token`` header holding this server's CSRF token (403
  otherwise; a form or a request from another origin cannot set it) and a JSON body.
- Responses are never cached and never framed; the page runs no script from elsewhere.
- No secret reaches the page: the model is built without the config's credentials.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources
import threading
import time
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from zdm.config import Config
from zdm.console.actions import BadRequest, perform
from zdm.console.model import console_state
from zdm.console.page import page_title, render_live, render_page
from zdm.console.server import LOOPBACK_HOSTS
from zdm.errors import ZdmError
from zdm.phases import ConcurrentModification
from zdm.phases.live import LiveSchema
from zdm.state import StateStore, open_checkpoints
from zdm.state.checkpoint import CheckpointStore

CSRF_HEADER = "X-CSRF-Token"
TOKEN_COOKIE = "zdm_console_token"

#: How long one look at the migration answers every page (the pages poll once a second).
LOOK_TTL_S = 0.5

#: The page's script, served from the package.
SCRIPT = "console.js"

#: How long the page's view of the live schemas is reused (an action always reads them anew).
SCHEMA_TTL_S = 30.0

_HEADERS = {"Cache-Control": "no-store", "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
                                       "style-src 'unsafe-inline'; "
                                       "img-src 'self'; connect-src 'self'; form-action 'self'; "
                                       "frame-ancestors 'none'; base-uri 'none'"}


def cached_schema(live_schema: LiveSchema | None, ttl: float = SCHEMA_TTL_S,
                  clock: Callable[[], float] = time.monotonic) -> LiveSchema | None:
    """``live_schema`` reusing its answer for ``ttl`` seconds: a page refreshed every few
    seconds must not read both clusters' schemas each time."""
    if live_schema is None:
        return None
    lock = threading.Lock()
    memo: dict[str, Any] = {}

    def read(config: Config):
        with lock:
            if "value" in memo and clock() - memo["at"] < ttl:
                return memo["value"]
        value = live_schema(config)  # a ZdmError is not remembered: the next look retries
        with lock:
            memo.update(value=value, at=clock())
        return value

    return read


def create_app(config: Config, store: StateStore, *, live_schema: LiveSchema | None,
               bearer_token: str | None = None, csrf_token: str | None = None,
               allowed_hosts: Sequence[str] = LOOPBACK_HOSTS, secure_cookie: bool = False,
               ack_timeout: float = 10.0, look_ttl: float = LOOK_TTL_S) -> Starlette:
    """The console for the migration of ``config`` whose state is ``store``.
    ``live_schema`` as for :func:`zdm.phases.live.gather_facts`; ``bearer_token`` None means
    none is asked for (loopback only: the CLI enforces it); ``look_ttl`` how long one look
    at the migration answers every request."""
    csrf = csrf_token or secrets.token_urlsafe(32)
    page_schema = cached_schema(live_schema)
    opened: dict[str, CheckpointStore] = {}  # kept open: a cluster store's session is dear
    opening = threading.Lock()

    def checkpoints(kind: str) -> CheckpointStore:
        with opening:
            if kind not in opened:
                opened[kind] = open_checkpoints(config, kind)
            return opened[kind]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for cps in opened.values():
                cps.close()

    looked: dict[str, Any] = {}
    looking = threading.Lock()

    def look() -> dict[str, Any]:
        with looking:  # a second request waits for the look under way, then shares it
            if "doc" in looked and time.monotonic() - looked["at"] < look_ttl:
                return looked["doc"]
            doc = console_state(config, store, live_schema=page_schema, checkpoints=checkpoints)
            looked.update(doc=doc, at=time.monotonic())
            return doc

    def forget() -> None:
        with looking:
            looked.clear()

    def authorized(request: Request) -> bool:
        if bearer_token is None:
            return True
        header = request.headers.get("authorization", "")
        given = header[7:].strip() if header[:7].lower() == "bearer " else \
            request.cookies.get(TOKEN_COOKIE, "")
        return bool(given) and secrets.compare_digest(given.encode(), bearer_token.encode())

    def guarded(handler: Callable[[Request, bytes], Response], *, post: bool = False):
        async def endpoint(request: Request) -> Response:
            if request.url.path == "/" and "token" in request.query_params:
                return login(request.query_params["token"])
            if not authorized(request):
                return _error(401, "a bearer token is required",
                              "send `Authorization: Bearer TOKEN` with the token of "
                              "--token-file, or open /?token=TOKEN once in the browser",
                              {"WWW-Authenticate": "Bearer"})
            if post:
                given = request.headers.get(CSRF_HEADER, "")
                if not given or not secrets.compare_digest(given.encode(), csrf.encode()):
                    return _error(403, "the CSRF token is missing or wrong",
                                  f"send the {CSRF_HEADER} header that GET /api/state returns "
                                  "(the page does it for you; reload it)")
            try:
                body = await request.body() if post else b""
                response = await run_in_threadpool(handler, request, body)
            except BadRequest as exc:
                response = _error(400, exc.message, exc.hint)
            except ConcurrentModification as exc:
                response = _error(409, exc.message, exc.hint)
            except ZdmError as exc:
                response = _error(500, exc.message, exc.hint)
            response.headers.update(_HEADERS)
            return response
        return endpoint

    def login(token: str) -> Response:
        """The browser's way in: the token given in the address becomes an HttpOnly cookie,
        and the address (with the token) is replaced at once."""
        if bearer_token is None:
            return RedirectResponse("/", status_code=303)
        if not secrets.compare_digest(token.encode(), bearer_token.encode()):
            return _error(401, "wrong token", "use the token of --token-file",
                          {"WWW-Authenticate": "Bearer"})
        response = RedirectResponse("/", status_code=303, headers=_HEADERS)
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict",
                            secure=secure_cookie)
        return response

    def page(request: Request, body: bytes) -> Response:
        return HTMLResponse(render_page(look(), csrf))

    def view(request: Request, body: bytes) -> Response:
        doc = look()
        return HTMLResponse(render_live(doc), headers={
            "X-Generated-At": doc["generated_at"],
            "X-Page-Title": page_title(doc)})

    script_text = resources.files("zdm.console").joinpath("static", SCRIPT).read_bytes()

    def script(request: Request, body: bytes) -> Response:
        return Response(script_text, media_type="text/javascript")

    def state(request: Request, body: bytes) -> Response:
        return JSONResponse(look(), headers={CSRF_HEADER: csrf})

    def action(name: str):
        def handler(request: Request, raw: bytes) -> Response:
            body = _json_body(request, raw)
            allowed = {"operator", "why", "to"} | (
                {"confirm_clients_on_proxy", "confirm_clients_on_target", "skip_async_reads"}
                if name == "advance" else set())
            unknown = sorted(set(body) - allowed)
            if unknown:
                raise BadRequest(f"unknown field(s) for {name}: {', '.join(unknown)}",
                                 hint=f"use only: {', '.join(sorted(allowed))}")
            why = body.get("why")
            if why is not None and not isinstance(why, str):
                raise BadRequest("why must be text", hint="say in a sentence why")
            flags = {k: body.get(k, False) for k in allowed if k.startswith(("confirm", "skip"))}
            for key, value in flags.items():
                if not isinstance(value, bool):
                    raise BadRequest(f"{key} must be true or false", hint=f"send {key}: true")
            try:
                outcome = perform(config, store, name, operator=body.get("operator"),  # type: ignore[arg-type]
                                  live_schema=live_schema, to=body.get("to"), why=why,
                                  ack_timeout=ack_timeout, **flags)
            finally:
                forget()
            return JSONResponse(outcome.to_dict(), status_code=200 if outcome.done else 409)
        return handler

    routes = [
        Route("/", guarded(page), methods=["GET"]),
        Route("/view", guarded(view), methods=["GET"]),
        # browsers ask for it: "none" rather than a 404 in every console
        Route("/favicon.ico", lambda request: Response(status_code=204), methods=["GET"]),
        Route(f"/static/{SCRIPT}", guarded(script), methods=["GET"]),
        Route("/api/state", guarded(state), methods=["GET"]),
        Route("/api/phase/advance", guarded(action("advance"), post=True), methods=["POST"]),
        Route("/api/phase/rollback", guarded(action("rollback"), post=True), methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])


def _json_body(request: Request, body: bytes) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise BadRequest("the body must be JSON", hint="send Content-Type: application/json")
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        raise BadRequest("the body is not valid JSON", hint='send e.g. {"operator": "alice"}') from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object", hint='send e.g. {"operator": "alice"}')
    return doc


def _error(status: int, message: str, todo: str | None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "todo": todo}, status_code=status,
                        headers={**_HEADERS, **(headers or {})})
