"""Who may call the agent's ``/api/``: a bearer token, checked as the kubelet checks its callers.

The kubelet authenticates a caller's token with a TokenReview and authorizes it with a
SubjectAccessReview for ``nodes/log`` (and friends) named after its node. The agent does the
same for its own resource: verb ``get`` on ``nodes`` subresource ``logs`` in group
``nodekeeper.io``, named after this node. A subresource of its own, so that granting it (the
chart's ``nodekeeper-log-reader`` ClusterRole) does not grant the kubelet's API, and the reverse.

Decisions are cached by a hash of the token for a short time, as the kubelet's webhook
authenticator and authorizer cache theirs: allowed ones longer, refused ones briefly, so that a
new RoleBinding takes effect soon. A review the API server could not answer is never cached and
is reported as ``unavailable`` (the caller did nothing wrong): nothing leaves this module as an
exception.
"""

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

import kubernetes.client

from nodekeeper.kube.errors import KubeError, calling

logger = logging.getLogger(__name__)

GROUP = "nodekeeper.io"
RESOURCE = "nodes"
SUBRESOURCE = "logs"
VERB = "get"
MAX_ENTRIES = 4096

Outcome = Literal["allowed", "forbidden", "unauthenticated", "unavailable"]


@dataclasses.dataclass(frozen=True)
class Decision:
    outcome: Outcome
    user: str  # empty unless the token was authenticated
    reason: str


@dataclasses.dataclass(frozen=True)
class _Entry:
    expires: float
    decision: Decision


class AccessReviewer:
    """``review(token)``: TokenReview, then SubjectAccessReview, cached per token."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        node_name: str,
        allowed_ttl_seconds: float,
        denied_ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authentication = kubernetes.client.AuthenticationV1Api(api)
        self._authorization = kubernetes.client.AuthorizationV1Api(api)
        self._node_name = node_name
        self._allowed_ttl = allowed_ttl_seconds
        self._denied_ttl = denied_ttl_seconds
        self._clock = clock
        self._cache: dict[str, _Entry] = {}

    async def review(self, token: str) -> Decision:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached.expires > now:
            return cached.decision
        try:
            decision = await asyncio.to_thread(calling, lambda: self._decide(token))
        except KubeError as e:
            return Decision("unavailable", "", f"the API server could not review the token: {e}")
        ttl = self._allowed_ttl if decision.outcome == "allowed" else self._denied_ttl
        if ttl > 0:
            self._remember(key, _Entry(expires=self._clock() + ttl, decision=decision))
        return decision

    def _remember(self, key: str, entry: _Entry) -> None:
        if len(self._cache) >= MAX_ENTRIES:
            now = self._clock()
            self._cache = {k: e for k, e in self._cache.items() if e.expires > now}
            while len(self._cache) >= MAX_ENTRIES:  # still full: the oldest go first
                del self._cache[next(iter(self._cache))]
        self._cache[key] = entry

    def _decide(self, token: str) -> Decision:
        """Both reviews, blocking (run in a thread)."""
        review: Any = self._authentication.create_token_review(
            kubernetes.client.V1TokenReview(spec=kubernetes.client.V1TokenReviewSpec(token=token))
        )
        status = review.status
        if status is None or not status.authenticated or status.user is None:
            error = (status.error if status is not None else None) or "token not authenticated"
            return Decision("unauthenticated", "", error)
        user = status.user
        access: Any = self._authorization.create_subject_access_review(
            kubernetes.client.V1SubjectAccessReview(
                spec=kubernetes.client.V1SubjectAccessReviewSpec(
                    user=user.username,
                    uid=user.uid,
                    groups=user.groups,
                    extra=user.extra,
                    resource_attributes=kubernetes.client.V1ResourceAttributes(
                        group=GROUP,
                        resource=RESOURCE,
                        subresource=SUBRESOURCE,
                        name=self._node_name,
                        verb=VERB,
                    ),
                )
            )
        )
        verdict = access.status
        username = str(user.username or "")
        if verdict is not None and verdict.allowed:
            return Decision("allowed", username, str(verdict.reason or ""))
        why = (verdict.reason if verdict is not None else None) or "no RBAC rule allows it"
        return Decision(
            "forbidden",
            username,
            f'user "{username}" may not {VERB} {RESOURCE}/{SUBRESOURCE} in group {GROUP} '
            f'for node "{self._node_name}": {why}',
        )
