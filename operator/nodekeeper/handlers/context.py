"""What every handler needs, passed through kopf's ``memo`` (kopf copies it per object; the
fields are shared references, so every copy reaches the same services)."""

import dataclasses

from nodekeeper.backups.services import BackupServices
from nodekeeper.kube.protocols import StatusApplier
from nodekeeper.metrics import Metrics
from nodekeeper.workloads.supervisor import WorkloadSupervisor


@dataclasses.dataclass
class AgentContext:
    node_name: str
    metrics: Metrics
    workloads: WorkloadSupervisor
    backuprun_status: StatusApplier
    backups: BackupServices | None = None  # None: BackupRuns are validated, not executed
