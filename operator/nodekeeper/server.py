"""The agent's HTTP server: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for kubelet.

``/healthz`` answers while the event loop runs; ``/readyz`` only once the agent is ready (the
operator connected and watching), with the reason in the body otherwise.
"""

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from nodekeeper.metrics import Metrics

logger = logging.getLogger(__name__)

ReadinessCheck = Callable[[], str | None]  # None when ready, else why not


class HttpServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        metrics: Metrics,
        readiness: ReadinessCheck,
        routes: Sequence[web.RouteDef] = (),  # more endpoints, e.g. /api/v1/logs
        guard: Middleware | None = None,  # api_guard(...): who may call /api/
    ) -> None:
        self._routes = routes
        self._guard = guard
        self._host = host
        self._port = port
        self._metrics = metrics
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port, known after start()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard] if self._guard is not None else [])
        app.router.add_get("/metrics", self._serve_metrics)
        app.router.add_get("/healthz", self._serve_health)
        app.router.add_get("/readyz", self._serve_ready)
        app.add_routes(self._routes)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._port
        logger.info("serving metrics and probes", extra={"address": f"{self._host}:{self.port}"})

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # Every response closes its connection: scrapes and probes are seconds apart, and an idle
    # keep-alive connection would hold up a prompt shutdown.
    async def _serve_metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(self._metrics.registry)
        return _closing(web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST}))

    async def _serve_health(self, _: web.Request) -> web.Response:
        return _closing(web.Response(text="ok\n"))

    async def _serve_ready(self, _: web.Request) -> web.Response:
        problem = self._readiness()
        if problem is None:
            return _closing(web.Response(text="ok\n"))
        return _closing(web.Response(status=503, text=problem + "\n"))


def _closing(response: web.Response) -> web.Response:
    response.force_close()
    return response


# ---------------------------------------------------------------- the /api/ guard
class Verdict(Protocol):
    """What a review of a bearer token says (kube.access.Decision is one)."""

    @property
    def outcome(self) -> str: ...  # allowed, forbidden, unauthenticated or unavailable
    @property
    def user(self) -> str: ...
    @property
    def reason(self) -> str: ...


Review = Callable[[str], Awaitable[Verdict]]
GUARDED_PREFIX = "/api"


def api_guard(review: Review) -> Middleware:
    """Every request under /api/ needs a bearer token that ``review`` allows, as the kubelet's
    API does: 401 (with ``WWW-Authenticate: Bearer``) without a token or with one the API server
    does not know, 403 with the reason as JSON when it is known but not allowed, 503 when the
    API server could not be asked. Each decision is logged, without the token."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        canonical = route.canonical if route is not None else ""
        if not any(_under_api(path) for path in (request.path, canonical)):
            return await handler(request)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            _log_access(request, "unauthenticated", "", "no bearer token")
            return _refusal(401, "Unauthorized", "a bearer token is required")
        verdict = await review(token)
        _log_access(request, verdict.outcome, verdict.user, verdict.reason)
        if verdict.outcome == "allowed":
            return await handler(request)
        if verdict.outcome == "forbidden":
            return _refusal(403, "Forbidden", verdict.reason)
        if verdict.outcome == "unavailable":
            return _refusal(503, "ServiceUnavailable", verdict.reason)
        return _refusal(401, "Unauthorized", "the token is not valid")

    return guard


def _under_api(path: str) -> bool:
    return path == GUARDED_PREFIX or path.startswith(GUARDED_PREFIX + "/")


def _log_access(request: web.Request, outcome: str, user: str, reason: str) -> None:
    level = logging.INFO if outcome == "allowed" else logging.WARNING
    logger.log(
        level,
        "api access " + outcome,
        extra={"path": request.path, "user": user, "outcome": outcome, "reason": reason},
    )


def _refusal(status: int, reason: str, message: str) -> web.Response:
    body = json.dumps({"status": status, "reason": reason, "message": message})
    response = web.Response(status=status, text=body, content_type="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="nodekeeper"'
    return _closing(response)
