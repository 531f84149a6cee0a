"""The /api/ guard against the real API server: TokenReview, then SubjectAccessReview.

An aiohttp app with the agent's own middleware (server.api_guard) and reviewer
(kube.access.AccessReviewer) in front of a dummy /api/v1/ping; callers are real service accounts
with tokens from `kubectl create token`, and the permission is the chart's own log reader role.
"""

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from e2e.tests.conftest import CACHE, ROOT, Kubectl
from e2e.tests.identity import AgentIdentity
from nodekeeper.kube import client
from nodekeeper.kube.access import AccessReviewer
from nodekeeper.server import api_guard
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def callers(kubectl: Kubectl) -> Iterator[dict[str, str]]:
    """A namespace with two service accounts (their tokens) and the chart's log reader role."""
    suffix = uuid.uuid4().hex[:6]
    namespace = f"e2e-logauth-{suffix}"
    role = f"e2e-log-reader-{suffix}"
    kubectl.run("create", "namespace", namespace)
    try:
        tokens = {}
        for account in ("reader", "stranger"):
            kubectl.run("create", "serviceaccount", account, "-n", namespace)
            tokens[account] = kubectl.run(
                "create", "token", account, "-n", namespace, "--duration=10m"
            ).stdout.strip()
        yield {"namespace": namespace, "role": role, **tokens}
    finally:
        for name in (role, f"{role}-other-node"):
            for kind in ("clusterrolebinding", "clusterrole"):
                kubectl.run("delete", kind, name, "--ignore-not-found", check=False)
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def chart_log_reader_role(name: str) -> dict[str, Any]:
    """The ClusterRole the chart renders for log readers, under a name of this test's own."""
    rendered = subprocess.run(
        [
            str(CACHE / "bin" / "helm"),
            "template",
            "nodekeeper",
            str(ROOT / "charts" / "nodekeeper"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "ClusterRole" and doc["metadata"]["name"].endswith("log-reader"):
            doc["metadata"] = {"name": name}
            return dict(doc)
    raise AssertionError("the chart renders no log reader ClusterRole")


@pytest.fixture
async def api(
    agent_identity: AgentIdentity, node: str
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # The agent's own credentials: its reviews are calls the chart must grant.
    configuration = client.load(Path(agent_identity.kubeconfig(node)))
    reviewer = AccessReviewer(
        client.api_client(configuration),
        node_name=node,
        allowed_ttl_seconds=60,
        denied_ttl_seconds=0,  # a grant made during the test counts at once
    )

    async def ping(_: web.Request) -> web.Response:
        return web.json_response({"pong": True})

    async def health(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application(middlewares=[api_guard(reviewer.review)])
    app.router.add_get("/api/v1/ping", ping)
    app.router.add_get("/healthz", health)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_token_is_unauthorized(api: TestClient[web.Request, web.Application]) -> None:
    response = await api.get("/api/v1/ping")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_bogus_token_is_unauthorized(
    api: TestClient[web.Request, web.Application],
) -> None:
    response = await api.get("/api/v1/ping", headers=bearer("not-a-token"))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    basic = await api.get("/api/v1/ping", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status == 401


async def test_paths_outside_api_are_not_guarded(
    api: TestClient[web.Request, web.Application],
) -> None:
    assert (await api.get("/healthz")).status == 200


async def test_a_valid_token_without_permission_is_forbidden(
    api: TestClient[web.Request, web.Application], callers: dict[str, str]
) -> None:
    response = await api.get("/api/v1/ping", headers=bearer(callers["stranger"]))
    assert response.status == 403
    body = await response.json()
    assert body["reason"] == "Forbidden"
    assert f"system:serviceaccount:{callers['namespace']}:stranger" in body["message"]
    assert "nodes/logs" in body["message"]


async def test_the_log_reader_role_lets_a_caller_in(
    api: TestClient[web.Request, web.Application],
    callers: dict[str, str],
    kubectl: Kubectl,
    node: str,
) -> None:
    role = callers["role"]
    reader = f"{callers['namespace']}:reader"
    kubectl.apply(chart_log_reader_role(role))
    # Granted for another node only: still refused here (the review names this node).
    other = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": f"{role}-other-node"},
        "rules": [
            {
                "apiGroups": ["nodekeeper.io"],
                "resources": ["nodes/logs"],
                "resourceNames": [f"not-{node}"],
                "verbs": ["get"],
            }
        ],
    }
    kubectl.apply(other)
    kubectl.run(
        "create",
        "clusterrolebinding",
        f"{role}-other-node",
        f"--clusterrole={role}-other-node",
        f"--serviceaccount={reader}",
    )

    # The API server's RBAC cache has the binding once the server itself allows the reader the
    # other node's logs (a SubjectAccessReview, as the agent sends); only then does a 403 here
    # show that the review names this node, rather than that the binding is not seen yet.
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{reader}",
            "resourceAttributes": {
                "group": "nodekeeper.io",
                "resource": "nodes",
                "subresource": "logs",
                "name": f"not-{node}",
                "verb": "get",
            },
        },
    }

    async def granted_elsewhere() -> bool:
        answer = await asyncio.to_thread(
            kubectl.run, "create", "-o", "json", "-f", "-", input=json.dumps(review)
        )
        return bool(json.loads(answer.stdout)["status"].get("allowed"))

    await eventually(granted_elsewhere, what="the other node's grant in force", seconds=20)
    refused = await api.get("/api/v1/ping", headers=bearer(callers["reader"]))
    assert refused.status == 403

    kubectl.run(
        "create", "clusterrolebinding", role, f"--clusterrole={role}", f"--serviceaccount={reader}"
    )

    async def let_in() -> bool:
        return (await api.get("/api/v1/ping", headers=bearer(callers["reader"]))).status == 200

    # The API server's RBAC cache catches up within moments.
    await eventually(let_in, what="the reader let in (200) once bound", seconds=20, every=0.2)
    response = await api.get("/api/v1/ping", headers=bearer(callers["reader"]))
    assert await response.json() == {"pong": True}
