"""The stable codes users see: condition reasons and ``status.errorCode`` values.

Tools and alerts match on these strings, so they never change meaning once released.
docs/reference.md lists each with what it means; a test keeps the two in step.
"""

# Condition reasons.
ADMITTED = "Admitted"
INVALID_SPEC = "InvalidSpec"

REASONS: dict[str, str] = {
    ADMITTED: "Workload `Admitted=True`: the spec is valid and this node accepted it.",
    INVALID_SPEC: "`Admitted=False` (Workload) or `Completed=True` (BackupRun): the spec "
    "failed validation; the message names the fields. Fix the spec and apply it again.",
}

# status.errorCode values (Workload) and error codes in metrics.
DOCKER_UNAVAILABLE = "DockerUnavailable"
IMAGE_NOT_FOUND = "ImageNotFound"
CONTAINER_NOT_FOUND = "ContainerNotFound"
CONTAINER_CREATE_FAILED = "ContainerCreateFailed"
DOCKER_ERROR = "DockerError"

ERROR_CODES: dict[str, str] = {
    INVALID_SPEC: "The spec failed validation; the message names the fields to fix.",
    DOCKER_UNAVAILABLE: "The node's Docker engine did not answer; check dockerd on the node.",
    IMAGE_NOT_FOUND: "The image is not on the node; load or pull it there (no registry pull is "
    "attempted).",
    CONTAINER_NOT_FOUND: "The container was removed outside nodekeeper.",
    CONTAINER_CREATE_FAILED: "Docker refused to create or start the container; the message "
    "quotes Docker.",
    DOCKER_ERROR: "Any other Docker failure; the message quotes Docker.",
}
