"""Per-Workload container figures: read from each container's cgroup, exported as metrics.

The real engine's containers are read in tests/integration/test_workload_usage.py.
"""

from prometheus_client import CollectorRegistry

from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.metrics import WorkloadUsageCollector
from nodekeeper.pressure.usage import WorkloadKey, WorkloadUsage, workload_containers
from tests.unit.pressure.conftest import FIXTURES

SCOPED = "0123456789abcdef" * 4  # system.slice/docker-<id>.scope: limited, throttled, PSI
PLAIN = "fedcba9876543210" * 4  # docker/<id>: no limits
GONE = "ab" * 32  # listed, exited before its cgroup was read


def exported(usage: WorkloadUsage) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(WorkloadUsageCollector(usage.latest))
    return registry


def test_each_running_workload_container_is_read_and_exported_under_its_workload() -> None:
    usage = WorkloadUsage(CgroupReader(root=FIXTURES / "cgroup-v2"))
    running = {
        SCOPED: {"nodekeeper.io/namespace": "shop", "nodekeeper.io/name": "api"},
        PLAIN: {"nodekeeper.io/namespace": "shop", "nodekeeper.io/name": "worker"},
        GONE: {"nodekeeper.io/namespace": "shop", "nodekeeper.io/name": "gone"},
        "cd" * 32: {"nodekeeper.io/namespace": "shop"},  # no name: not a Workload's
    }
    pairs = workload_containers(
        running, namespace_label="nodekeeper.io/namespace", name_label="nodekeeper.io/name"
    )
    sampled = usage.sample(pairs)

    assert [u.workload for u in sampled] == [
        WorkloadKey("shop", "api"),
        WorkloadKey("shop", "worker"),
    ]
    registry = exported(usage)
    api = {"namespace": "shop", "workload": "api"}
    worker = {"namespace": "shop", "workload": "worker"}
    value = registry.get_sample_value
    assert value("nodekeeper_workload_memory_limit_bytes", api) == 67108864
    assert value("nodekeeper_workload_memory_limit_bytes", worker) is None  # "max": unlimited
    assert value("nodekeeper_workload_memory_working_set_bytes", worker) == 1048576
    assert value("nodekeeper_workload_oom_kills_total", api) == 1
    assert value("nodekeeper_workload_cpu_throttled_seconds_total", api) == 3.5
    assert value("nodekeeper_workload_cpu_quota_cores", api) == 0.5
    assert value("nodekeeper_workload_cpu_quota_cores", worker) is None
    cpu_some = {**api, "resource": "cpu", "line": "some"}
    assert value("nodekeeper_workload_psi_ratio", cpu_some) == 0.05
    assert value("nodekeeper_workload_memory_limit_bytes", {**api, "workload": "gone"}) is None


def test_a_container_that_stopped_leaves_the_next_sample() -> None:
    usage = WorkloadUsage(CgroupReader(root=FIXTURES / "cgroup-v2"))
    usage.sample([(WorkloadKey("shop", "api"), SCOPED)])
    usage.sample([])

    assert (
        exported(usage).get_sample_value(
            "nodekeeper_workload_memory_limit_bytes", {"namespace": "shop", "workload": "api"}
        )
        is None
    )
