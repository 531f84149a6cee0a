"""Errors of the Kubernetes boundary, so callers never see the kubernetes client's exceptions::

KubeError
├── KubeConfigError      no usable kubeconfig or service account
├── KubeUnavailable      the API server cannot be reached, timed out or answered 5xx
├── UnsupportedServer    the API server is older than nodekeeper supports
└── KubeRejected         the API server refused the request (4xx)
    ├── KubeNotFound     404
    ├── KubeConflict     409
    ├── KubeInvalid      422
    └── KubeForbidden    401, 403
"""

import json
from collections.abc import Callable
from typing import TypeVar

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

T = TypeVar("T")


class KubeError(Exception):
    pass


class KubeConfigError(KubeError):
    pass


class KubeUnavailable(KubeError):
    pass


class UnsupportedServer(KubeError):
    pass


class KubeRejected(KubeError):
    def __init__(self, message: str, *, status: int, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class KubeNotFound(KubeRejected):
    pass


class KubeConflict(KubeRejected):
    pass


class KubeInvalid(KubeRejected):
    pass


class KubeForbidden(KubeRejected):
    pass


_BY_STATUS: dict[int, type[KubeRejected]] = {
    401: KubeForbidden,
    403: KubeForbidden,
    404: KubeNotFound,
    409: KubeConflict,
    422: KubeInvalid,
}


def translate(error: Exception) -> KubeError:
    """Map a kubernetes-client or urllib3 exception to this module's tree."""
    if isinstance(error, ApiException):
        status = int(error.status or 0)
        message, reason = _status_message(error.body, fallback=str(error.reason))
        # 429 (API Priority and Fairness throttling) and 408 pass: retry, never give up on them.
        if status >= 500 or status in (0, 408, 429):
            return KubeUnavailable(f"API server answered {status}: {message}")
        cls = _BY_STATUS.get(status, KubeRejected)
        return cls(message, status=status, reason=reason)
    if isinstance(error, HTTPError | OSError):
        return KubeUnavailable(f"cannot reach the API server: {error}")
    if isinstance(error, KubeError):
        return error
    return KubeError(f"unexpected error from the kubernetes client: {error!r}")


def _status_message(body: object, *, fallback: str) -> tuple[str, str]:
    """The message and reason of a metav1.Status body, which is what users need to read."""
    try:
        status = json.loads(body) if isinstance(body, str | bytes) else None
    except ValueError:
        status = None
    if isinstance(status, dict):
        return str(status.get("message", fallback)), str(status.get("reason", ""))
    return fallback, ""


def calling(fn: Callable[[], T]) -> T:
    """Run a blocking client call, translating its exceptions (use inside a thread)."""
    try:
        return fn()
    except (ApiException, HTTPError, OSError) as e:
        raise translate(e) from e
