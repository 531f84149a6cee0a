"""The one way to name an object the agent acts on: namespace, name and uid.

The uid tells a recreated object (same namespace and name) from the one that was deleted: it
labels containers, guards deletes (a uid precondition) and names log chunks' owner.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> "ObjectRef":
        """The reference of an object as the API server sends it (a dict or a kopf body)."""
        meta = body["metadata"]
        return cls(namespace=str(meta["namespace"]), name=str(meta["name"]), uid=str(meta["uid"]))

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"
