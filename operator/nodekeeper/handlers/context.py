"""What every handler needs, passed through kopf's ``memo``."""

import dataclasses

from nodekeeper.kube.objects import Objects
from nodekeeper.kube.status import StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.admission import AdmissionGate
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.runtime.images import ImagePolicy
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
    objects: Objects
    image_policy: ImagePolicy
    admission: AdmissionGate | None = None  # the node-pressure gate; None admits regardless
    # Workload uid -> phase as last reported, for the nodekeeper_workloads gauge. Shared by
    # every copy kopf makes of this context (a dict is copied by reference).
    phases: dict[str, str] = dataclasses.field(default_factory=dict)
