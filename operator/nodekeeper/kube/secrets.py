"""Reading one key of a Secret, for a BackupRun's ``secretKeyRef`` variables.

The agent reads Secrets only in namespaces its RBAC allows (the chart lists them); a Secret it
may not read is reported like a missing one, with the reason in the message.
"""

import asyncio
import base64

import kubernetes.client

from nodekeeper.kube.errors import KubeError, KubeRejected, calling


class SecretKeyMissing(KubeError):
    """The Secret or its key does not exist, or the agent may not read it."""


class Secrets:
    def __init__(self, api: kubernetes.client.ApiClient) -> None:
        self._api = kubernetes.client.CoreV1Api(api)

    async def value(self, namespace: str, name: str, key: str) -> str:
        try:
            secret = await asyncio.to_thread(
                calling, lambda: self._api.read_namespaced_secret(name, namespace)
            )
        except KubeRejected as e:
            raise SecretKeyMissing(f"cannot read Secret {namespace}/{name}: {e}") from e
        data = secret.data or {}
        if key not in data:
            raise SecretKeyMissing(f"Secret {namespace}/{name} has no key {key!r}")
        try:
            return base64.b64decode(data[key]).decode()
        except (ValueError, UnicodeDecodeError) as e:
            raise SecretKeyMissing(
                f"key {key!r} of Secret {namespace}/{name} is not UTF-8 text"
            ) from e
