"""The /api/ guard's answers for each verdict, and which paths it guards (the real API server
is in e2e/tests/test_log_api_auth.py)."""

import dataclasses

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from nodekeeper.server import api_guard


@dataclasses.dataclass(frozen=True)
class Verdict:
    outcome: str
    user: str = "alice"
    reason: str = "because"


async def client_for(outcome: str) -> TestClient[web.Request, web.Application]:
    seen: list[str] = []

    async def review(token: str) -> Verdict:
        seen.append(token)
        return Verdict(outcome)

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[api_guard(review)])
    for path in ("/api", "/api/v1/logs", "/apis", "/metrics"):
        app.router.add_get(path, ok)
    test_client = TestClient(TestServer(app))
    await test_client.start_server()
    return test_client


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("allowed", 200), ("forbidden", 403), ("unauthenticated", 401), ("unavailable", 503)],
)
async def test_each_verdict_has_its_answer(outcome: str, status: int) -> None:
    api = await client_for(outcome)
    try:
        response = await api.get("/api/v1/logs", headers={"Authorization": "Bearer t0ken"})
        assert response.status == status
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        if status in (403, 503):
            assert (await response.json())["message"] == "because"
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("path", "guarded"),
    [("/api", True), ("/api/v1/logs", True), ("/apis", False), ("/metrics", False)],
)
async def test_only_api_paths_are_guarded(path: str, guarded: bool) -> None:
    api = await client_for("forbidden")
    try:
        response = await api.get(path)
        assert response.status == (401 if guarded else 200)
    finally:
        await api.close()


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "t0ken"])
async def test_no_bearer_token_is_unauthorized_without_a_review(header: str) -> None:
    api = await client_for("allowed")
    try:
        response = await api.get("/api/v1/logs", headers={"Authorization": header})
        assert response.status == 401
    finally:
        await api.close()
