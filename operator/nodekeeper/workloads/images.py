"""Which images a namespace may run on this node.

Pod Security does not apply to Workloads (they are Docker containers, not pods), so anyone who
may create a Workload could otherwise run any image the node's Docker can start. The policy maps
a namespace (or ``*`` for any namespace without its own entry) to shell-style image patterns.
"""

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence

ANY = "*"


@dataclasses.dataclass(frozen=True)
class ImagePolicy:
    patterns: Mapping[str, Sequence[str]]

    def allowed(self, namespace: str, image: str) -> bool:
        patterns = self.patterns.get(namespace, self.patterns.get(ANY, ()))
        return any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns)

    def describe(self, namespace: str) -> str:
        patterns = self.patterns.get(namespace, self.patterns.get(ANY, ()))
        return ", ".join(patterns) if patterns else "no image at all"
