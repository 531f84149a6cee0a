"""The HTTP server answers probes and scrapes the way kubelet and Prometheus expect."""

import aiohttp

from nodekeeper.metrics import Metrics
from nodekeeper.server import HttpServer


async def test_metrics_health_and_readiness() -> None:
    metrics = Metrics()
    metrics.agent_info.info({"version": "1.2.3", "node": "n1"})
    problem: list[str | None] = ["starting"]
    server = HttpServer(host="127.0.0.1", port=0, metrics=metrics, readiness=lambda: problem[0])
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert (await response.text()) == "starting\n"
            problem[0] = None
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
        assert 'nodekeeper_agent_info{node="n1",version="1.2.3"} 1.0' in text
    finally:
        await server.stop()
