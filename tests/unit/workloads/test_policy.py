"""What a Workload's status says about its container, and when it restarts."""

import dataclasses
import random
import time

import pytest

from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.workload import WorkloadSpec
from nodekeeper.runtime.containers import ContainerState
from nodekeeper.workloads.backoff import restart_delay
from nodekeeper.workloads.policy import observe
from nodekeeper.workloads.runner import container_spec, spec_hash


def spec(**fields: object) -> WorkloadSpec:
    return WorkloadSpec.model_validate({"nodeName": "n", "image": "busybox", **fields})


def container(status: str, exit_code: int | None = None, oom: bool = False) -> ContainerState:
    return ContainerState(
        id="c1",
        name="x",
        image="busybox",
        labels={},
        status=status,
        exit_code=exit_code,
        oom_killed=oom,
        started_at=None,
        finished_at=None,
        log_path=None,
    )


def test_a_running_container_is_ready() -> None:
    seen = observe(container("running"), spec(), 0)
    assert (seen.phase, seen.ready, seen.reason) == ("Running", True, "ContainerRunning")


@pytest.mark.parametrize(
    ("policy", "code", "phase", "reason"),
    [
        ("Never", 0, "Succeeded", "Completed"),
        ("Never", 2, "Failed", "ContainerFailed"),
        ("OnFailure", 0, "Succeeded", "Completed"),
        ("OnFailure", 2, "Running", "BackingOff"),
        ("Always", 0, "Running", "BackingOff"),
    ],
)
def test_an_exit_follows_the_restart_policy(
    policy: str, code: int, phase: str, reason: str
) -> None:
    seen = observe(container("exited", code), spec(restartPolicy=policy), 0)
    assert (seen.phase, seen.ready, seen.reason, seen.exit_code) == (phase, False, reason, code)
    assert (seen.restart_in is not None) == (reason == "BackingOff")


def test_restarts_stop_at_max_retries_and_say_so() -> None:
    seen = observe(container("exited", 1), spec(backoff={"maxRetries": 2}), 2)
    assert (seen.phase, seen.reason, seen.restart_in) == ("Failed", "BackoffLimitExceeded", None)
    assert "after 2 restarts" in seen.message


def test_an_oom_kill_is_named() -> None:
    seen = observe(container("exited", 137, oom=True), spec(restartPolicy="Never"), 0)
    assert (seen.phase, seen.reason) == ("Failed", "OOMKilled")
    assert "resources.limits.memory" in seen.message


def test_backoff_grows_exponentially_within_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    delays = [restart_delay(n, initial=10, maximum=300, rng=rng) for n in range(8)]
    for n, delay in enumerate(delays):
        base = min(300, 10 * 2**n)
        assert base * 0.8 <= delay <= min(300, base * 1.2)
    assert delays[-1] <= 300


def test_the_spec_hash_changes_with_the_container_shape_only() -> None:
    assert spec_hash(spec()) == spec_hash(spec(restartPolicy="Never", ttlSecondsAfterFailed=5))
    assert spec_hash(spec()) != spec_hash(spec(args=["x"]))


def test_the_container_carries_the_workloads_identity_and_limits() -> None:
    ref = ObjectRef(uid="0123456789abcdef", namespace="ns", name="web")
    made = container_spec(ref, spec(resources={"limits": {"memory": "64Mi", "cpu": "250m"}}))
    assert made.labels["nodekeeper.io/workload-uid"] == "0123456789abcdef"
    assert made.labels["nodekeeper.io/namespace"] == "ns"
    assert (made.memory_bytes, made.nano_cpus) == (64 * 2**20, 250_000_000)
    assert made.name == "nk-ns-web-01234567"


def test_looking_again_while_backing_off_gives_the_same_retry_time() -> None:
    # Events and resyncs make the daemon look again: the backoff must not be drawn anew, or
    # every look would move nextRetryAt and cost a status write.
    exited = dataclasses.replace(container("exited", 1), finished_at="2027-01-15T08:00:00.25Z")
    first = observe(exited, spec(), 2, now=1_800_000_000.0)
    again = observe(exited, spec(), 2, now=1_800_000_003.0)
    assert first.retry_at == again.retry_at
    assert first.message == again.message
    assert again.restart_in == pytest.approx(first.restart_in - 3)
    # A different restart number draws its own delay.
    assert observe(exited, spec(), 3, now=1_800_000_000.0).retry_at != first.retry_at


@pytest.mark.parametrize(("ran", "phase", "counted"), [(660.0, "Running", 0), (60.0, "Failed", 3)])
def test_a_long_healthy_run_starts_the_restart_count_anew(
    ran: float, phase: str, counted: int
) -> None:
    # As the kubelet resets its backoff: a service that crashes once a day after running for
    # hours must not reach maxRetries, one that crash-loops must.
    started = 1_800_000_000.0
    exited = dataclasses.replace(
        container("exited", 1),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + ran)),
    )
    seen = observe(exited, spec(backoff={"maxRetries": 3}), 3, now=started + ran + 1)
    assert (seen.phase, seen.restarts) == (phase, counted)
