"""Errors of the Docker boundary; callers never see docker-py or requests exceptions::

    DockerError
    ├── DockerUnavailable       the engine cannot be reached (socket missing, daemon restarting)
    ├── ImageNotFound           the image is not on the node (no registry pull is attempted)
    ├── ContainerNotFound       the container is gone
    └── ContainerCreateFailed   the engine refused to create or start the container

Each carries ``code``: the stable error code users see in a Workload's ``status.errorCode``.
"""

from collections.abc import Callable
from typing import TypeVar

import docker.errors
import requests.exceptions

from nodekeeper.api import codes

T = TypeVar("T")


class DockerError(Exception):
    code = codes.DOCKER_ERROR


class DockerUnavailable(DockerError):
    code = codes.DOCKER_UNAVAILABLE


class ImageNotFound(DockerError):
    code = codes.IMAGE_NOT_FOUND


class ContainerNotFound(DockerError):
    code = codes.CONTAINER_NOT_FOUND


class ContainerCreateFailed(DockerError):
    code = codes.CONTAINER_CREATE_FAILED


def translate(error: Exception, *, doing: str) -> DockerError:
    if isinstance(error, docker.errors.ImageNotFound):
        return ImageNotFound(f"{doing}: image not found on this node: {error.explanation}")
    if isinstance(error, docker.errors.NotFound):
        return ContainerNotFound(f"{doing}: {error.explanation}")
    if isinstance(error, docker.errors.APIError):
        if error.is_server_error():
            return DockerUnavailable(f"{doing}: Docker engine error: {error.explanation}")
        return ContainerCreateFailed(f"{doing}: {error.explanation}")
    if isinstance(error, requests.exceptions.RequestException | docker.errors.DockerException):
        return DockerUnavailable(f"{doing}: cannot reach the Docker engine: {error}")
    if isinstance(error, OSError):
        return DockerUnavailable(f"{doing}: cannot reach the Docker engine: {error}")
    return DockerError(f"{doing}: unexpected Docker error: {error!r}")


def calling(doing: str, fn: Callable[[], T]) -> T:
    """Run a blocking SDK call, translating its exceptions (use inside a thread)."""
    try:
        return fn()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as e:
        raise translate(e, doing=doing) from e
