"""The minimum Kubernetes version check, made once at start.

1.32 is the first release where CRD ``selectableFields`` are GA; on older servers the agent's
``spec.nodeName`` field selector would fail, so the agent refuses to start with one clear line.
"""

import asyncio
import json
import re
from typing import Any

import kubernetes.client

from nodekeeper.kube.errors import UnsupportedServer, calling

MINIMUM = (1, 32)


def parse(git_version: str) -> tuple[int, int]:
    """``v1.35.2`` -> (1, 35); vendor suffixes (``+k3s1``, ``-eks-…``) are ignored."""
    found = re.match(r"^v?(\d+)\.(\d+)", git_version)
    if not found:
        raise UnsupportedServer(f"cannot read the API server version {git_version!r}")
    return int(found[1]), int(found[2])


def require_supported(git_version: str) -> None:
    if parse(git_version) < MINIMUM:
        raise UnsupportedServer(
            f"Kubernetes {git_version} is too old: nodekeeper needs {MINIMUM[0]}.{MINIMUM[1]} or "
            "newer (CRD selectableFields); upgrade the control plane"
        )


async def check(api: kubernetes.client.ApiClient) -> str:
    """The server's version string, after checking it is supported."""

    def fetch() -> object:
        # Raw JSON: the generated model insists on fields some distributions leave out.
        response: Any = kubernetes.client.VersionApi(api).get_code(_preload_content=False)
        return json.loads(response.data)

    info = await asyncio.to_thread(calling, fetch)
    git_version = info.get("gitVersion") if isinstance(info, dict) else None
    if not isinstance(git_version, str):
        raise UnsupportedServer(f"the API server's /version has no gitVersion: {info!r}")
    require_supported(git_version)
    return git_version
