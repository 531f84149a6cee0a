"""This agent acts on its own node's objects only, and never writes to anyone else's.

With the ``spec.nodeName`` field selector the API server sends no other node's objects. Where
one arrives anyway (an emulator, a server that ignores the selector), handlers skip it through
:func:`is_own`, and :class:`OwnNodeDiffBaseStorage` stops kopf from writing its diff-base
annotation to it: kopf stores a diff-base even for objects no handler matched.
"""

from collections.abc import Mapping
from typing import Any

import kopf

from nodekeeper.handlers.context import AgentContext


def owner_of(body: Mapping[str, Any]) -> str | None:
    spec = body.get("spec") or {}
    node = spec.get("nodeName") if isinstance(spec, Mapping) else None
    return node if isinstance(node, str) else None


def is_own(body: kopf.Body, memo: AgentContext, **_: Any) -> bool:
    return owner_of(body) == memo.node_name


def is_foreign(body: kopf.Body, memo: AgentContext, **_: Any) -> bool:
    return owner_of(body) != memo.node_name


class OwnNodeDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    def __init__(self, node_name: str, *, prefix: str, key: str) -> None:
        super().__init__(prefix=prefix, key=key)
        self._node_name = node_name

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if owner_of(body) != self._node_name:
            return
        super().store(body=body, patch=patch, essence=essence)
