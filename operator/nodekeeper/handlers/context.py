"""What every handler needs, passed through kopf's ``memo``."""

import dataclasses

from nodekeeper.kube.status import StatusWriter
from nodekeeper.metrics import Metrics


@dataclasses.dataclass
class AgentContext:
    node_name: str
    metrics: Metrics
    workload_status: StatusWriter
    backuprun_status: StatusWriter
