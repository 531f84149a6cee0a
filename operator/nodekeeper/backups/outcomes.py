"""What a task's exit code, a timeout or an ingested result means for a BackupRun.

Exit codes follow restic's documented ones, because the tasks are restic (or wrap it): a
wrapper that keeps restic's codes gets the precise reasons for free.
"""

import dataclasses

from nodekeeper.api.backuprun import BackupPhase

SUCCEEDED = "Succeeded"
PARTIALLY_FAILED = "PartiallyFailed"
FAILED = "Failed"
TIMEOUT = "Timeout"
REPOSITORY_NOT_FOUND = "RepositoryNotFound"
REPOSITORY_LOCKED = "RepositoryLocked"
WRONG_PASSWORD = "WrongPassword"
INTERRUPTED = "Interrupted"
CONTAINER_LOST = "ContainerLost"
SECRET_NOT_FOUND = "SecretNotFound"
IMAGE_NOT_FOUND = "ImageNotFound"
TASK_START_FAILED = "TaskStartFailed"

# restic: 0 ok, 1 fatal, 3 some source files could not be read, 10 no repository,
# 11 repository locked, 12 wrong password, 130 interrupted (SIGINT).
_BY_EXIT_CODE: dict[int, tuple[BackupPhase, str, str]] = {
    0: ("Succeeded", SUCCEEDED, "the task exited with code 0"),
    3: (
        "PartiallyFailed",
        PARTIALLY_FAILED,
        "the task exited with code 3: some source files could not be read; the snapshot lacks them",
    ),
    10: ("Failed", REPOSITORY_NOT_FOUND, "the repository does not exist; initialise it first"),
    11: ("Failed", REPOSITORY_LOCKED, "the repository is locked; check for a stale lock"),
    12: ("Failed", WRONG_PASSWORD, "the repository password is wrong; check the secret"),
    130: ("Failed", INTERRUPTED, "the task was interrupted (SIGINT)"),
}


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a run ended: its phase and the reason of its ``Completed`` condition."""

    phase: BackupPhase
    reason: str
    message: str

    @property
    def failed(self) -> bool:
        return self.phase != "Succeeded"


def of_exit_code(code: int) -> Outcome:
    known = _BY_EXIT_CODE.get(code)
    if known is not None:
        return Outcome(*known)
    return Outcome("Failed", FAILED, f"the task exited with code {code}; check its log")


def of_timeout(seconds: int) -> Outcome:
    return Outcome(
        "Failed", TIMEOUT, f"the task ran longer than timeoutSeconds ({seconds}) and was killed"
    )


def of_result(status: BackupPhase, error_message: str | None) -> Outcome:
    """An ingested result: its status is both the phase and the reason."""
    message = f"recorded result: {status}"
    if error_message:
        message += f": {error_message}"
    return Outcome(status, status, message[:1024])


# Condition reasons of Completed, for docs/reference.md.
REASONS: dict[str, str] = {
    SUCCEEDED: "BackupRun `Completed=True`, phase Succeeded: exit code 0 (or a recorded result).",
    PARTIALLY_FAILED: "BackupRun `Completed=True`, phase PartiallyFailed: exit code 3, some "
    "source files could not be read (or a recorded result).",
    FAILED: "BackupRun `Completed=True`, phase Failed: another non-zero exit code (or a "
    "recorded result); `status.errorMessage` quotes restic when it said why.",
    TIMEOUT: "BackupRun `Completed=True`, phase Failed: the task ran past `timeoutSeconds` and "
    "was killed.",
    REPOSITORY_NOT_FOUND: "BackupRun phase Failed: exit code 10, the repository does not exist.",
    REPOSITORY_LOCKED: "BackupRun phase Failed: exit code 11, the repository is locked.",
    WRONG_PASSWORD: "BackupRun phase Failed: exit code 12, the repository password is wrong.",
    INTERRUPTED: "BackupRun phase Failed: exit code 130, the task was interrupted.",
    CONTAINER_LOST: "BackupRun phase Failed: the task's container vanished before it ended "
    "(removed outside nodekeeper).",
    SECRET_NOT_FOUND: "BackupRun phase Failed: a `secretKeyRef` names a Secret or key that "
    "does not exist or cannot be read.",
    IMAGE_NOT_FOUND: "BackupRun phase Failed: the task image is not on the node.",
    TASK_START_FAILED: "BackupRun phase Failed: Docker refused to create or start the task.",
}
