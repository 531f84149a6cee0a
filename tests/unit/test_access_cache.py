"""The /api/ guard's decisions are cached as the kubelet caches its webhook's: an allowed token
for ``api_auth_allowed_ttl_seconds`` (120 s), a refused one for ``api_auth_denied_ttl_seconds``
(10 s), then asked again. The reviews go to a fake API server that counts them, over HTTP, through
the real kubernetes client; time is the reviewer's injected clock.
"""

import collections
from collections.abc import AsyncIterator

import kubernetes.client
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from nodekeeper.config import load
from nodekeeper.kube.access import AccessReviewer

pytestmark = pytest.mark.timeout(30)

ALLOWED_TOKEN = "alice-token"
REFUSED_TOKEN = "bob-token"
USERS = {ALLOWED_TOKEN: "alice", REFUSED_TOKEN: "bob"}


class ReviewServer:
    """TokenReview and SubjectAccessReview as the API server answers them: alice may, bob not."""

    def __init__(self) -> None:
        self.calls: collections.Counter[tuple[str, str]] = collections.Counter()

    async def token_review(self, request: web.Request) -> web.Response:
        spec = (await request.json())["spec"]
        user = USERS[spec["token"]]
        self.calls["TokenReview", user] += 1
        status = {"authenticated": True, "user": {"username": user, "groups": []}}
        return web.json_response({"kind": "TokenReview", "spec": spec, "status": status})

    async def access_review(self, request: web.Request) -> web.Response:
        spec = (await request.json())["spec"]
        user = spec["user"]
        self.calls["SubjectAccessReview", user] += 1
        status = {"allowed": user == "alice", "reason": "RBAC"}
        return web.json_response({"kind": "SubjectAccessReview", "spec": spec, "status": status})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/apis/authentication.k8s.io/v1/tokenreviews", self.token_review)
        app.router.add_post(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews", self.access_review
        )
        return app

    def reviews(self, user: str) -> int:
        """How many times the user's token was reviewed (both reviews each time)."""
        assert self.calls["TokenReview", user] == self.calls["SubjectAccessReview", user]
        return self.calls["TokenReview", user]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[tuple[ReviewServer, str]]:
    reviews = ReviewServer()
    test_server = TestServer(reviews.app())
    await test_server.start_server()
    yield reviews, str(test_server.make_url("")).rstrip("/")
    await test_server.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reviewer(server: tuple[ReviewServer, str], clock: Clock) -> AccessReviewer:
    settings = load({})  # the defaults a user gets
    api = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=server[1]))
    return AccessReviewer(
        api,
        node_name="node-a",
        allowed_ttl_seconds=settings.api_auth_allowed_ttl_seconds,
        denied_ttl_seconds=settings.api_auth_denied_ttl_seconds,
        clock=clock,
    )


async def test_an_allowed_token_is_reused_for_120_seconds_then_reviewed_again(
    server: tuple[ReviewServer, str], clock: Clock, reviewer: AccessReviewer
) -> None:
    reviews, _ = server
    assert (await reviewer.review(ALLOWED_TOKEN)).outcome == "allowed"
    assert reviews.reviews("alice") == 1

    clock.now += 119
    assert (await reviewer.review(ALLOWED_TOKEN)).outcome == "allowed"
    assert reviews.reviews("alice") == 1  # within its TTL: not asked

    clock.now += 2  # 121 s after the first review
    assert (await reviewer.review(ALLOWED_TOKEN)).outcome == "allowed"
    assert reviews.reviews("alice") == 2


async def test_a_refused_token_is_reused_for_10_seconds_then_reviewed_again(
    server: tuple[ReviewServer, str], clock: Clock, reviewer: AccessReviewer
) -> None:
    reviews, _ = server
    assert (await reviewer.review(REFUSED_TOKEN)).outcome == "forbidden"
    assert reviews.reviews("bob") == 1

    clock.now += 9
    assert (await reviewer.review(REFUSED_TOKEN)).outcome == "forbidden"
    assert reviews.reviews("bob") == 1  # within its TTL: not asked

    clock.now += 2  # 11 s after the first review: a new RoleBinding would count by now
    assert (await reviewer.review(REFUSED_TOKEN)).outcome == "forbidden"
    assert reviews.reviews("bob") == 2


async def test_each_token_has_its_own_decision(
    server: tuple[ReviewServer, str], clock: Clock, reviewer: AccessReviewer
) -> None:
    reviews, _ = server
    assert (await reviewer.review(REFUSED_TOKEN)).outcome == "forbidden"
    assert (await reviewer.review(ALLOWED_TOKEN)).outcome == "allowed"
    clock.now += 5
    assert (await reviewer.review(REFUSED_TOKEN)).outcome == "forbidden"
    assert (await reviewer.review(ALLOWED_TOKEN)).outcome == "allowed"
    assert (reviews.reviews("alice"), reviews.reviews("bob")) == (1, 1)
