"""Everything the BackupRun handlers need, in one object the wiring builds once."""

import dataclasses

from prometheus_client import CollectorRegistry

from nodekeeper.backups.history import DEFAULT_FAILED_LIMIT, DEFAULT_SUCCEEDED_LIMIT, History
from nodekeeper.backups.logchunks import DEFAULT_CAP_BYTES
from nodekeeper.backups.metrics import BackupMetrics
from nodekeeper.backups.runlogs import RunLogs
from nodekeeper.backups.tasks import TaskLogs, TaskRunner
from nodekeeper.kube.backupruns import BackupRuns
from nodekeeper.kube.configmaps import ConfigMaps
from nodekeeper.kube.protocols import SecretReader
from nodekeeper.runtime.containers import Containers
from nodekeeper.runtime.logstream import ContainerLogs


@dataclasses.dataclass
class BackupServices:
    tasks: TaskRunner
    logs: RunLogs
    runs: BackupRuns
    history: History
    metrics: BackupMetrics

    @classmethod
    def build(
        cls,
        *,
        containers: Containers,
        config_maps: ConfigMaps,
        runs: BackupRuns,
        secrets: SecretReader,
        registry: CollectorRegistry,
        node_name: str,
        log_cap_bytes: int = DEFAULT_CAP_BYTES,
        succeeded_limit: int = DEFAULT_SUCCEEDED_LIMIT,
        failed_limit: int = DEFAULT_FAILED_LIMIT,
        poll_seconds: float = 1.0,
        task_logs: TaskLogs | None = None,  # default: read back through Docker's API
    ) -> "BackupServices":
        return cls(
            tasks=TaskRunner(
                containers,
                task_logs or ContainerLogs(containers.client),
                secrets,
                poll_seconds=poll_seconds,
            ),
            logs=RunLogs(config_maps, cap_bytes=log_cap_bytes),
            runs=runs,
            history=History(
                runs,
                node_name=node_name,
                succeeded_limit=succeeded_limit,
                failed_limit=failed_limit,
            ),
            metrics=BackupMetrics(registry),
        )
