"""No third-party exception leaks out of the Kubernetes or Docker boundary."""

import docker.errors
import pytest
import requests
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from nodekeeper.kube import errors as kube_errors
from nodekeeper.runtime import errors as docker_errors


def api_exception(status: int, message: str = "boom", reason: str = "Bad") -> ApiException:
    error = ApiException(status=status, reason=reason)
    error.body = f'{{"kind": "Status", "message": "{message}", "reason": "{reason}"}}'
    return error


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, kube_errors.KubeNotFound),
        (409, kube_errors.KubeConflict),
        (422, kube_errors.KubeInvalid),
        (403, kube_errors.KubeForbidden),
        (401, kube_errors.KubeForbidden),
        (400, kube_errors.KubeRejected),
        (500, kube_errors.KubeUnavailable),
        (429, kube_errors.KubeUnavailable),
        (408, kube_errors.KubeUnavailable),
        (503, kube_errors.KubeUnavailable),
    ],
)
def test_api_errors_map_by_status(status: int, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught:
        kube_errors.calling(lambda: (_ for _ in ()).throw(api_exception(status, "spec.x: bad")))
    assert "spec.x: bad" in str(caught.value)
    assert isinstance(caught.value.__cause__, ApiException)


def test_unreachable_api_server_is_unavailable() -> None:
    def fail() -> None:
        raise urllib3.exceptions.MaxRetryError(pool=None, url="/version")  # type: ignore[arg-type]

    with pytest.raises(kube_errors.KubeUnavailable, match="cannot reach the API server"):
        kube_errors.calling(fail)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (docker.errors.ImageNotFound("no such image"), docker_errors.ImageNotFound),
        (docker.errors.NotFound("no such container"), docker_errors.ContainerNotFound),
        (requests.exceptions.ConnectionError("refused"), docker_errors.DockerUnavailable),
        (FileNotFoundError("/var/run/docker.sock"), docker_errors.DockerUnavailable),
        (docker.errors.DockerException("weird"), docker_errors.DockerUnavailable),
    ],
)
def test_docker_errors_map_to_stable_codes(raised: Exception, expected: type[Exception]) -> None:
    def fail() -> None:
        raise raised

    with pytest.raises(expected) as caught:
        docker_errors.calling("doing it", fail)
    assert str(caught.value).startswith("doing it: ")


def test_a_programming_error_is_not_disguised_as_a_boundary_error() -> None:
    def bug() -> None:
        raise TypeError("a bug")

    with pytest.raises(TypeError):
        kube_errors.calling(bug)
    with pytest.raises(TypeError):
        docker_errors.calling("doing it", bug)
