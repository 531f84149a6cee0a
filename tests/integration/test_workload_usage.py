"""Per-Workload container figures on the real engine: a running Workload container's limits, as
Docker set them, read from its real cgroup and exported under its Workload's name."""

from prometheus_client import CollectorRegistry

from nodekeeper.api.names import LABEL_NAME, LABEL_NAMESPACE, LABEL_WORKLOAD_UID
from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.metrics import WorkloadUsageCollector
from nodekeeper.pressure.usage import WorkloadUsage
from nodekeeper.runtime.containers import Containers, ContainerSpec
from nodekeeper.workloads.usage import sample_once
from tests.integration.conftest import RUN_ID, TEST_IMAGE, unique


async def test_a_running_workload_containers_cgroup_is_exported(containers: Containers) -> None:
    uid = unique("uid")
    labels = {
        "nodekeeper.io/test-run": RUN_ID,
        LABEL_WORKLOAD_UID: uid,
        LABEL_NAMESPACE: "usage-test",
        LABEL_NAME: uid,
    }
    running = await containers.run(
        ContainerSpec(
            name=unique("usage"),
            image=TEST_IMAGE,
            command=["/bin/sh", "-c"],
            args=["sleep 60"],
            labels=labels,
            memory_bytes=48 * 2**20,
            nano_cpus=250_000_000,
        )
    )
    stopped = await containers.run(
        ContainerSpec(
            name=unique("usage-done"),
            image=TEST_IMAGE,
            command=["/bin/true"],
            labels={**labels, LABEL_WORKLOAD_UID: uid + "-done", LABEL_NAME: uid + "-done"},
        )
    )
    await containers.wait(stopped.id, deadline_seconds=30)
    usage = WorkloadUsage(CgroupReader())
    registry = CollectorRegistry()
    registry.register(WorkloadUsageCollector(usage.latest))

    await sample_once(containers, usage)

    ours = {"namespace": "usage-test", "workload": uid}
    assert [u.container_id for u in usage.latest() if u.workload.name == uid] == [running.id]
    assert registry.get_sample_value("nodekeeper_workload_memory_limit_bytes", ours) == 48 * 2**20
    assert registry.get_sample_value("nodekeeper_workload_cpu_quota_cores", ours) == 0.25
    used = registry.get_sample_value("nodekeeper_workload_memory_working_set_bytes", ours)
    assert used is not None
    assert 0 < used < 48 * 2**20
    gone = {"namespace": "usage-test", "workload": uid + "-done"}
    assert registry.get_sample_value("nodekeeper_workload_memory_limit_bytes", gone) is None
