"""Which containers' logs the agent collects, from include/exclude rules users write in settings.

A rule is one string: ``name=GLOB``, ``image=GLOB``, ``namespace=GLOB`` or ``label:KEY=GLOB``,
matched with shell globs (:func:`fnmatch.fnmatchcase`: ``*``, ``?``, ``[...]``, case-sensitive).
``namespace`` is the pod's namespace for Kubernetes containers and ``nodekeeper.io/namespace``
for the agent's own Workloads (empty for anything else); a ``label:`` rule never matches a
container without that label.

An empty include list selects every container; exclude wins over include; the agent's own
container is excluded unless ``exclude_self=False`` (tailing it would feed its own log back).

Selection and reading are separate questions: :meth:`LogRules.follows` says whether a container
is wanted, :meth:`LogRules.source` says where its lines can come from, because only the
``json-file`` driver leaves a file to tail.
"""

import dataclasses
import fnmatch
from collections.abc import Sequence
from typing import Literal

from nodekeeper.logs.records import ContainerInfo

Field = Literal["name", "image", "namespace", "label"]
Source = Literal["file", "api", "none"]

ACCEPTED_FORMS = "name=GLOB, image=GLOB, namespace=GLOB or label:KEY=GLOB"

# Drivers whose logs Docker can read back (`docker logs`, the API's log stream). Every other
# driver ships lines off the node and keeps nothing we could read.
API_DRIVERS = frozenset({"local", "journald"})
FILE_DRIVER = "json-file"


_FIELDS: dict[str, Field] = {"name": "name", "image": "image", "namespace": "namespace"}


class InvalidRule(ValueError):
    """A rule string that is none of the accepted forms; the message says which ones are."""


@dataclasses.dataclass(frozen=True)
class Rule:
    field: Field
    pattern: str
    key: str = ""  # the label key, for field == "label"

    @classmethod
    def parse(cls, text: str) -> "Rule":
        spec = text.strip()
        selector, equals, pattern = spec.partition("=")
        selector, pattern = selector.strip(), pattern.strip()
        if not equals:
            raise InvalidRule(f"log rule {text!r} has no '=': use {ACCEPTED_FORMS}")
        field = _FIELDS.get(selector)
        if field is not None:
            return cls(field=field, pattern=pattern)
        if selector.startswith("label:") and selector.removeprefix("label:").strip():
            return cls(field="label", pattern=pattern, key=selector.removeprefix("label:").strip())
        raise InvalidRule(f"log rule {text!r} is not understood: use {ACCEPTED_FORMS}")

    def matches(self, info: ContainerInfo) -> bool:
        if self.field == "label":
            value = info.labels.get(self.key)
            return value is not None and fnmatch.fnmatchcase(value, self.pattern)
        value = {"name": info.name, "image": info.image, "namespace": info.namespace}[self.field]
        return fnmatch.fnmatchcase(value, self.pattern)

    def __str__(self) -> str:
        selector = f"label:{self.key}" if self.field == "label" else self.field
        return f"{selector}={self.pattern}"


def parse_rules(texts: Sequence[str]) -> tuple[Rule, ...]:
    """Every rule of a setting, or :class:`InvalidRule` for the first one that is not valid."""
    return tuple(Rule.parse(text) for text in texts)


class LogRules:
    """The verdict for each container: follow it or not, and where its lines come from."""

    def __init__(
        self,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        own_id: str | None = None,
        *,
        exclude_self: bool = True,
    ) -> None:
        self.include = parse_rules(include)
        self.exclude = parse_rules(exclude)
        self.own_id = own_id
        self.exclude_self = exclude_self

    def follows(self, info: ContainerInfo) -> bool:
        """Whether the user wants this container's log, whatever its driver."""
        if self.exclude_self and self.own_id is not None and info.id == self.own_id:
            return False
        if any(rule.matches(info) for rule in self.exclude):
            return False
        return not self.include or any(rule.matches(info) for rule in self.include)

    @staticmethod
    def source(info: ContainerInfo) -> Source:
        """``file``: tail the json-file; ``api``: Docker can read it back; ``none``: lost to us."""
        if info.log_driver == FILE_DRIVER:
            return "file"
        if info.log_driver in API_DRIVERS:
            return "api"
        return "none"
