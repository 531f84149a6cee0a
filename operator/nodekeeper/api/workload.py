"""The Workload kind: one long-running container on one node, kept running by its agent."""

from typing import Literal

from pydantic import Field

from nodekeeper.api.common import EnvVar, Model, NodeName
from nodekeeper.api.conditions import Condition
from nodekeeper.api.quantities import Quantity

KIND = "Workload"
PLURAL = "workloads"
SINGULAR = "workload"
SHORT_NAMES = ("wl",)

RestartPolicy = Literal["Always", "OnFailure", "Never"]
WorkloadPhase = Literal["Pending", "Running", "Succeeded", "Failed"]

# Condition types of a Workload.
ADMITTED = "Admitted"
READY = "Ready"


class ResourceLimits(Model):
    """Hard limits enforced by Docker on the container."""

    cpu: Quantity | None = Field(default=None, description="CPU limit, e.g. 500m or 2.")
    memory: Quantity | None = Field(default=None, description="Memory limit, e.g. 256Mi.")


class Resources(Model):
    """Compute resources of the container."""

    limits: ResourceLimits | None = Field(default=None, description="Hard limits.")


class Backoff(Model):
    """How restarts are spaced: exponential from initialSeconds up to maxSeconds, with jitter."""

    initialSeconds: int = Field(default=10, ge=1, le=3600, description="First restart delay.")
    maxSeconds: int = Field(default=300, ge=1, le=86400, description="Longest restart delay.")
    maxRetries: int = Field(
        default=6, ge=0, le=1000, description="Restarts before the Workload is Failed."
    )


class WorkloadSpec(Model):
    """What to run, on which node, and how to restart it."""

    nodeName: NodeName
    image: str = Field(
        description="Container image, as the node's Docker engine names it (e.g. busybox:1.36).",
        min_length=1,
        max_length=512,
    )
    command: list[str] | None = Field(
        default=None, max_length=256, description="Replaces the image's entrypoint when set."
    )
    args: list[str] | None = Field(
        default=None, max_length=256, description="Arguments to the command."
    )
    env: list[EnvVar] | None = Field(
        default=None, max_length=256, description="Environment variables."
    )
    resources: Resources | None = Field(default=None, description="Limits applied by Docker.")
    restartPolicy: RestartPolicy = Field(
        default="Always",
        description="Always: restart whenever it exits. OnFailure: only on a non-zero exit. "
        "Never: run once.",
    )
    backoff: Backoff | None = Field(default=None, description="Restart delays and limit.")
    ttlSecondsAfterFailed: int | None = Field(
        default=None,
        ge=0,
        description="Delete the Workload and its container this long after it has Failed.",
    )


class WorkloadStatus(Model):
    """What the node's agent observed. Written by the agent only."""

    observedGeneration: int | None = Field(default=None, description="Generation last acted on.")
    phase: WorkloadPhase | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed."
    )
    containerID: str | None = Field(default=None, description="Docker container id.")
    restarts: int | None = Field(
        default=None,
        description="Restarts since the container last ran 10 minutes without exiting (what "
        "backoff.maxRetries counts).",
    )
    lastExitCode: int | None = Field(default=None, description="Exit code of the last run.")
    nextRetryAt: str | None = Field(
        default=None,
        description="When the next restart is due while backing off (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    errorCode: str | None = Field(
        default=None, description="A stable code for the last error, e.g. ImageNotFound."
    )
    message: str | None = Field(default=None, description="What happened and what to do.")
    conditions: list[Condition] | None = Field(
        default=None,
        description="Admitted and Ready, in the metav1.Condition shape.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


PRINTER_COLUMNS = (
    {"name": "Node", "type": "string", "jsonPath": ".spec.nodeName"},
    {"name": "Image", "type": "string", "jsonPath": ".spec.image", "priority": 1},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
    {"name": "Error", "type": "string", "jsonPath": ".status.errorCode", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)
