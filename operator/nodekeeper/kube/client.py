"""One place that turns a kubeconfig (or the pod's service account) into API credentials.

Both the kubernetes client (status writes, Node patches) and kopf's own client use what
:func:`load` returns, so the agent never talks to two clusters by accident.
"""

import dataclasses
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
from kubernetes.config.config_exception import ConfigException

from nodekeeper.kube.errors import KubeConfigError

# What the rest of the agent holds to reach the API server (it never imports kubernetes itself).
ApiClient = kubernetes.client.ApiClient

# Content types of the patches the agent sends.
APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply (status, log ConfigMaps)
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"  # built-in types (Node)


@dataclasses.dataclass(frozen=True)
class Credentials:
    """What a client needs to reach the API server; read by kopf's login handler too."""

    server: str
    ca_path: str | None
    insecure: bool
    certificate_path: str | None
    private_key_path: str | None
    scheme: str | None
    token: str | None


def load(kubeconfig: Path | None) -> kubernetes.client.Configuration:
    """A client configuration from ``kubeconfig``, else in-cluster; one clear error otherwise."""
    configuration = kubernetes.client.Configuration()
    try:
        if kubeconfig is not None:
            if not kubeconfig.is_file():
                raise KubeConfigError(f"kubeconfig {kubeconfig} does not exist or is not a file")
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig), client_configuration=configuration
            )
        else:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
    except ConfigException as e:
        where = f"kubeconfig {kubeconfig}" if kubeconfig else "the in-cluster service account"
        raise KubeConfigError(
            f"cannot load credentials from {where}: {e}; set KUBECONFIG or run in a pod"
        ) from e
    return configuration


DEFAULT_TIMEOUT_SECONDS = 30.0


class _TimedApiClient(kubernetes.client.ApiClient):
    """Every call gets a timeout unless it names its own: the client's default is none, so a
    server that accepts and never answers would hold a thread (and a handler) forever."""

    def __init__(self, configuration: kubernetes.client.Configuration, timeout: float) -> None:
        super().__init__(configuration)
        self._timeout = timeout

    def call_api(
        self,
        method: str,
        url: str,
        header_params: Any = None,
        body: Any = None,
        post_params: Any = None,
        _request_timeout: Any = None,
    ) -> Any:
        return super().call_api(
            method,
            url,
            header_params,
            body,
            post_params,
            _request_timeout=_request_timeout or (self._timeout, self._timeout),  # connect, read
        )


def api_client(
    configuration: kubernetes.client.Configuration,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> kubernetes.client.ApiClient:
    # One retry inside a call, not urllib3's three: a timed-out GET took four timeouts. The one
    # left covers a pooled connection the server closed while idle; every caller retries
    # further on its own schedule (status writes, Node heartbeats) or reports the failure.
    configuration.retries = urllib3.Retry(total=1, redirect=0, raise_on_redirect=False)
    return _TimedApiClient(configuration, timeout_seconds)


def credentials(configuration: kubernetes.client.Configuration) -> Credentials:
    """The credentials now; a rotating token (service account, exec plugin) is refreshed first."""
    refresh = getattr(configuration, "refresh_api_key_hook", None)
    if refresh is not None:
        refresh(configuration)
    header = configuration.get_api_key_with_prefix(
        "BearerToken"
    ) or configuration.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (
        (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    )
    return Credentials(
        server=configuration.host,
        ca_path=configuration.ssl_ca_cert,
        insecure=not configuration.verify_ssl,
        certificate_path=configuration.cert_file,
        private_key_path=configuration.key_file,
        scheme=scheme,
        token=token,
    )
