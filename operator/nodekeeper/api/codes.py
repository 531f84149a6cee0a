"""The stable codes users see: condition reasons, ``status.errorCode`` values and exit codes.

Tools and alerts match on these strings, so they never change meaning once released.
docs/reference.md lists each with what it means; a test keeps the two in step.
"""

from typing import Final

# Condition reasons.
ADMITTED = "Admitted"
INVALID_SPEC = "InvalidSpec"
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
NODE_UNDER_PRESSURE: Final = "NodeUnderPressure"
INSUFFICIENT_RESOURCES: Final = "InsufficientResources"

CONTAINER_RUNNING = "ContainerRunning"
NO_CONTAINER = "NoContainer"
CONTAINER_NOT_STARTED = "ContainerNotStarted"
BACKING_OFF = "BackingOff"
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
COMPLETED = "Completed"
CONTAINER_FAILED = "ContainerFailed"

# A BackupRun's reasons before it ends (how it ended: backups/outcomes.py).
BACKUP_PENDING = "Pending"
BACKUP_STARTED = "Started"
BACKUP_RUNNING = "Running"

# Node conditions, one per resource, set by the pressure reporter, and their reasons.
NODE_CONDITION_TYPES: dict[str, str] = {
    "memory": "NodekeeperMemoryPressure",
    "cpu": "NodekeeperCPUPressure",
    "io": "NodekeeperIOPressure",
}
_RESOURCE_NAMES = {"memory": "Memory", "cpu": "CPU", "io": "IO"}
_RESOURCE_WORDS = {"memory": "memory", "cpu": "CPU", "io": "IO"}  # inside a sentence
PSI_UNAVAILABLE = "PSIUnavailable"
NOT_YET_SAMPLED = "NotYetSampled"


def pressure_reason(resource: str) -> str:
    """``CPUPressure``, ``MemoryPressure``, ``IOPressure``: the reason of a True condition."""
    return f"{_RESOURCE_NAMES[resource]}Pressure"


def calm_reason(resource: str) -> str:
    """``NoCPUPressure``, ...: the reason of a False condition."""
    return f"No{_RESOURCE_NAMES[resource]}Pressure"


NODE_REASONS: dict[str, str] = {
    **{
        pressure_reason(r): f"Node `{kind}=True`: {_RESOURCE_WORDS[r]} PSI stayed at or above "
        "the enter threshold for the sustain window; new Workloads are refused."
        for r, kind in NODE_CONDITION_TYPES.items()
    },
    **{
        calm_reason(r): f"Node `{kind}=False`: {_RESOURCE_WORDS[r]} PSI is below the "
        "threshold, or has not stayed above it for the sustain window."
        for r, kind in NODE_CONDITION_TYPES.items()
    },
    PSI_UNAVAILABLE: "Node condition Unknown: no PSI figures for the resource: the kernel gives "
    "none (built without CONFIG_PSI or booted with psi=0; boot with psi=1), or its pressure file "
    "could not be parsed (the agent's log names it; `nodekeeper_pressure_read_errors_total` "
    "counts it).",
    NOT_YET_SAMPLED: "Node condition Unknown: the agent has not sampled PSI yet.",
}


REASONS: dict[str, str] = {
    ADMITTED: "Workload `Admitted=True`: the spec is valid and this node accepted it.",
    INVALID_SPEC: "`Admitted=False` (Workload) or `Completed=True` (BackupRun): the spec "
    "failed validation; the message names the fields. Fix the spec and apply it again.",
    CONTAINER_RUNNING: "Workload `Ready=True`: its container runs.",
    NO_CONTAINER: "Workload `Ready=False`: no container exists yet.",
    CONTAINER_NOT_STARTED: "Workload `Ready=False`: the container exists but has not started.",
    BACKING_OFF: "Workload `Ready=False`: the container exited and is restarted at "
    "`status.nextRetryAt` (exponential backoff with jitter).",
    BACKOFF_LIMIT_EXCEEDED: "Workload `Ready=False`, phase Failed: the container kept exiting "
    "and `backoff.maxRetries` restarts are used up.",
    COMPLETED: "Workload `Ready=False`, phase Succeeded: the container exited with code 0 and "
    "the restart policy does not restart it.",
    CONTAINER_FAILED: "Workload `Ready=False`, phase Failed: the container exited with a "
    "non-zero code and the restart policy does not restart it.",
    "OOMKilled": "Workload `Ready=False`: the container was killed for exceeding its memory limit.",
    "ImageNotFound": "Workload `Ready=False`, phase Pending: the image is not on the node; "
    "retried every 30 s. BackupRun phase Failed: the task image is not on the node.",
    "DockerUnavailable": "Workload `Ready=False`: the Docker engine did not answer; retried "
    "every 10 s.",
    "ContainerCreateFailed": "Workload `Ready=False`: Docker refused to create or start the "
    "container; the message quotes Docker.",
    "DockerError": "Workload `Ready=False`: another Docker failure; the message quotes Docker.",
    IMAGE_NOT_ALLOWED: "Workload `Admitted=False`, phase Failed: the image policy does not "
    "allow the image in this namespace.",
    NODE_UNDER_PRESSURE: "Workload `Admitted=False`, phase Pending: a Nodekeeper*Pressure "
    "condition of the node is True; retried until it clears.",
    INSUFFICIENT_RESOURCES: "Workload `Admitted=False`, phase Pending: node memory, CPU or "
    "Docker disk use is past its admission limit; retried until it drops.",
    **NODE_REASONS,
    # BackupRun outcomes (backups/outcomes.py; a test keeps the two in step).
    "Succeeded": (
        "BackupRun `Completed=True`, phase Succeeded: exit code 0 (or a recorded result)."
    ),
    "PartiallyFailed": (
        "BackupRun `Completed=True`, phase PartiallyFailed: exit code 3, some "
        "source files could not be read (or a recorded result)."
    ),
    "Failed": (
        "BackupRun `Completed=True`, phase Failed: another non-zero exit code (or a "
        "recorded result); `status.errorMessage` quotes restic when it said why."
    ),
    "Timeout": (
        "BackupRun `Completed=True`, phase Failed: the task ran past `timeoutSeconds` and "
        "was killed."
    ),
    "RepositoryNotFound": "BackupRun phase Failed: exit code 10, the repository does not exist.",
    "RepositoryLocked": "BackupRun phase Failed: exit code 11, the repository is locked.",
    "WrongPassword": "BackupRun phase Failed: exit code 12, the repository password is wrong.",
    "Interrupted": "BackupRun phase Failed: exit code 130, the task was interrupted.",
    "ContainerLost": (
        "BackupRun phase Failed: the task's container vanished before it ended "
        "(removed outside nodekeeper)."
    ),
    "SecretNotFound": (
        "BackupRun phase Failed: a `secretKeyRef` names a Secret or key that does "
        "not exist or cannot be read."
    ),
    "TaskStartFailed": "BackupRun phase Failed: Docker refused to create or start the task.",
    BACKUP_STARTED: "BackupRun `Running=True`: the task container started.",
    BACKUP_PENDING: (
        "BackupRun `Running=False`, `Completed=False`: the run waits to start (or for its "
        "ingested log)."
    ),
    BACKUP_RUNNING: "BackupRun `Completed=False`: the task has not ended yet.",
}

# status.errorCode values (Workload) and error codes in metrics.
DOCKER_UNAVAILABLE = "DockerUnavailable"
IMAGE_NOT_FOUND = "ImageNotFound"
CONTAINER_NOT_FOUND = "ContainerNotFound"
CONTAINER_CREATE_FAILED = "ContainerCreateFailed"
DOCKER_ERROR = "DockerError"
OOM_KILLED = "OOMKilled"

ERROR_CODES: dict[str, str] = {
    INVALID_SPEC: "The spec failed validation; the message names the fields to fix.",
    DOCKER_UNAVAILABLE: "The node's Docker engine did not answer; check dockerd on the node.",
    IMAGE_NOT_FOUND: "The image is not on the node; load or pull it there (no registry pull is "
    "attempted).",
    CONTAINER_NOT_FOUND: "The container was removed outside nodekeeper.",
    CONTAINER_CREATE_FAILED: "Docker refused to create or start the container; the message "
    "quotes Docker.",
    DOCKER_ERROR: "Any other Docker failure; the message quotes Docker.",
    OOM_KILLED: "The container was killed for exceeding its memory limit; raise "
    "resources.limits.memory.",
    IMAGE_NOT_ALLOWED: "The image policy (setting image_policy) does not allow this image in "
    "this namespace; use an allowed image or ask the node's operators.",
    NODE_UNDER_PRESSURE: "The node is under sustained CPU, memory or IO pressure; the Workload "
    "starts when it ends.",
    INSUFFICIENT_RESOURCES: "The node's memory, CPU or Docker disk use is past the admission "
    "limit; free some, or assign the Workload to another node.",
}

# Exit codes of `nodekeeper run`: supervisors and scripts act on them.
EXIT_STOPPED = 0
EXIT_CLUSTER = 1
EXIT_SETTINGS = 2
EXIT_HUNG = 3

EXIT_CODES: dict[int, str] = {
    EXIT_STOPPED: "Stopped by SIGTERM or SIGINT.",
    EXIT_CLUSTER: "The cluster or the Docker engine cannot be used: no credentials, unreachable, "
    "or older than Kubernetes 1.32. Also when a part of the agent ended unexpectedly and took "
    "the agent down (logged as `agent task ended unexpectedly`, with a crash report).",
    EXIT_SETTINGS: "A setting is missing or invalid.",
    EXIT_HUNG: "A stop took longer than `shutdown_timeout_seconds`; the agent exited anyway.",
}
