"""What every handler needs, passed through kopf's ``memo``."""

import asyncio
import dataclasses

from nodekeeper.backups.services import BackupServices
from nodekeeper.kube.objects import Objects
from nodekeeper.kube.status import StatusWriter
from nodekeeper.metrics import Metrics
from nodekeeper.pressure.admission import AdmissionGate
from nodekeeper.runtime.events import ContainerEvents
from nodekeeper.workloads.images import ImagePolicy
from nodekeeper.workloads.runner import WorkloadRunner


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
    backups: BackupServices | None = None  # None: BackupRuns are validated, not executed
    # Workload uid -> phase as last reported, for the nodekeeper_workloads gauge. Shared by
    # every copy kopf makes of this context (a dict is copied by reference).
    phases: dict[str, str] = dataclasses.field(default_factory=dict)
    # Workload uid -> the handler's last admission verdict, and a lock the handler and the
    # daemon both hold while they touch that Workload's container. kopf handles one event of an
    # object at a time, so the daemon's body lags behind the handler's own writes: the daemon
    # reads the verdict from here, not from the body.
    verdicts: dict[str, bool] = dataclasses.field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = dataclasses.field(default_factory=dict)

    def lock_for(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    def forget(self, uid: str) -> None:
        for table in (self.phases, self.verdicts, self.locks):
            table.pop(uid, None)
