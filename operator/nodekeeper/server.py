"""The agent's HTTP server: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for kubelet.

``/healthz`` answers while the event loop runs; ``/readyz`` only once the agent is ready (the
operator connected and watching), with the reason in the body otherwise.
"""

import logging
from collections.abc import Callable, Sequence

from aiohttp import web
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
    ) -> None:
        self._routes = routes
        self._host = host
        self._port = port
        self._metrics = metrics
        self._readiness = readiness
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port, known after start()

    def app(self) -> web.Application:
        app = web.Application()
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
