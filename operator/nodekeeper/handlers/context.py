"""What every handler needs, passed through kopf's ``memo``."""

import dataclasses

from nodekeeper.kube.status import StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.runtime.workloads import WorkloadRunner


@dataclasses.dataclass
class AgentContext:
    node_name: str
    metrics: Metrics
    workload_status: StatusWriter  # admission fields and the Admitted condition
    workload_runtime_status: StatusWriter  # phase, container, restarts and the Ready condition
    backuprun_status: StatusWriter
    workloads: WorkloadRunner
    events: ContainerEvents
