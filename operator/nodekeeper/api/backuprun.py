"""The BackupRun kind: one backup, check or prune task, executed on a node or recorded there.

A run is either executed by the agent (``image`` set) or ingested (``result`` set: a run that
happened elsewhere, recorded by the agent of ``nodeName``). The schema refuses a spec with both
or neither.
"""

from typing import Literal, Self

from pydantic import ConfigDict, Field, model_validator

from nodekeeper.api.common import ENV_NAME_PATTERN, LABEL_VALUE_PATTERN, Model, NodeName
from nodekeeper.api.conditions import Condition

KIND = "BackupRun"
PLURAL = "backupruns"
SINGULAR = "backuprun"
SHORT_NAMES = ("br",)

TaskType = Literal["backup", "check", "prune"]
BackupPhase = Literal["Pending", "Running", "Succeeded", "PartiallyFailed", "Failed"]
ResultStatus = Literal["Succeeded", "PartiallyFailed", "Failed"]

# Condition types of a BackupRun (k8up's shape: Completed carries the outcome as its reason).
RUNNING = "Running"
COMPLETED = "Completed"

# spec.result.log is for small logs; larger ones go through `nodekeeper backups ingest`.
RESULT_LOG_MAX_CHARS = 65536


class SecretKeyRef(Model):
    """A key of a Secret in the run's own namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = Field(description="Key inside the Secret.", min_length=1, max_length=253)


class EnvSource(Model):
    """Where a variable's value comes from when it is not written inline."""

    secretKeyRef: SecretKeyRef = Field(description="Read the value from a Secret's key.")


class TaskEnvVar(Model):
    """One environment variable of the task: a value, or a reference to a Secret."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(has(self.value) && has(self.valueFrom))",
                    "message": "set value or valueFrom, not both",
                }
            ]
        }
    )

    name: str = Field(
        description="Variable name.", min_length=1, max_length=256, pattern=ENV_NAME_PATTERN
    )
    value: str | None = Field(default=None, description="The value, written inline.")
    valueFrom: EnvSource | None = Field(
        default=None,
        description="Take the value from a Secret (only in namespaces the chart allows).",
    )

    @model_validator(mode="after")
    def _value_or_reference(self) -> Self:
        # The same rule as the CEL rule above, for where no API server checked it.
        if self.value is not None and self.valueFrom is not None:
            raise ValueError("set value or valueFrom, not both")
        return self


class BackupResult(Model):
    """The outcome of a run executed outside the cluster, recorded as it is."""

    taskId: str = Field(
        description="The external system's id of the run.", min_length=1, max_length=253
    )
    status: ResultStatus = Field(description="Succeeded, PartiallyFailed or Failed.")
    durationSeconds: float = Field(ge=0, description="How long the run took.")
    snapshotId: str | None = Field(
        default=None, max_length=128, description="Snapshot written by a backup."
    )
    errorMessage: str | None = Field(
        default=None, max_length=4096, description="Why the run failed, if it did."
    )
    log: str | None = Field(
        default=None,
        max_length=RESULT_LOG_MAX_CHARS,
        description="A small log. Use `nodekeeper backups ingest --log-file` for larger ones.",
    )


class BackupRunSpec(Model):
    """A task to execute on nodeName, or the result of a task executed elsewhere."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.image) != has(self.result)",
                    "message": "set exactly one of spec.image (run a task) or spec.result "
                    "(record a run)",
                }
            ]
        }
    )

    nodeName: NodeName
    policy: str = Field(
        description="The backup policy this run belongs to; history limits apply per policy.",
        min_length=1,
        max_length=63,
        pattern=LABEL_VALUE_PATTERN,
    )
    taskType: TaskType = Field(description="backup, check or prune.")
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Image of the task container. Set image, or result, not both.",
    )
    command: list[str] | None = Field(
        default=None, max_length=256, description="Replaces the entrypoint."
    )
    args: list[str] | None = Field(
        default=None, max_length=256, description="Arguments to the command."
    )
    env: list[TaskEnvVar] | None = Field(
        default=None, max_length=256, description="Environment variables."
    )
    timeoutSeconds: int | None = Field(
        default=None, ge=1, description="Kill the task after this long (phase Failed, Timeout)."
    )
    result: BackupResult | None = Field(
        default=None, description="The outcome of a run executed elsewhere, to be recorded."
    )

    @model_validator(mode="after")
    def _executed_or_recorded(self) -> Self:
        # The same rule as the CEL rule above, for where no API server checked it.
        if (self.image is None) == (self.result is None):
            raise ValueError(
                "set exactly one of spec.image (run a task) or spec.result (record a run)"
            )
        return self


class BackupSummary(Model):
    """Figures from restic's --json summary line."""

    filesNew: int = Field(default=0, description="Files added.")
    filesChanged: int = Field(default=0, description="Files changed.")
    filesUnmodified: int = Field(default=0, description="Files unchanged.")
    dataAddedBytes: int = Field(default=0, description="Bytes added to the repository.")
    totalBytesProcessed: int = Field(default=0, description="Bytes read from the source.")


class LogInfo(Model):
    """Where the run's log is: ConfigMaps owned by the run, in order."""

    bytes: int = Field(default=0, description="Size of the stored log.")
    chunks: int = Field(default=0, description="Number of ConfigMaps holding it.")
    truncated: bool = Field(default=False, description="True when the middle was cut.")


class BackupRunStatus(Model):
    """What the owning agent observed. Written by the agent only."""

    observedGeneration: int | None = Field(default=None, description="Generation last acted on.")
    phase: BackupPhase | None = Field(
        default=None, description="Pending, Running, Succeeded, PartiallyFailed or Failed."
    )
    startTime: str | None = Field(
        default=None,
        description="When the task started.",
        json_schema_extra={"format": "date-time"},
    )
    completionTime: str | None = Field(
        default=None, description="When it ended.", json_schema_extra={"format": "date-time"}
    )
    durationSeconds: float | None = Field(default=None, description="How long it ran.")
    exitCode: int | None = Field(default=None, description="Exit code of the task container.")
    snapshotId: str | None = Field(default=None, description="Snapshot written by a backup.")
    summary: BackupSummary | None = Field(default=None, description="restic's summary figures.")
    errorMessage: str | None = Field(default=None, description="Why it failed, if it did.")
    log: LogInfo | None = Field(default=None, description="The stored log.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Running and Completed, in the metav1.Condition shape.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


PRINTER_COLUMNS = (
    {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
    {"name": "Policy", "type": "string", "jsonPath": ".spec.policy"},
    {"name": "Task", "type": "string", "jsonPath": ".spec.taskType"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Duration", "type": "number", "jsonPath": ".status.durationSeconds", "priority": 1},
    {"name": "Snapshot", "type": "string", "jsonPath": ".status.snapshotId", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)
