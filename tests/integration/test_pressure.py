"""Pressure on this real host: its PSI, its cgroups, a live trigger, a Docker container.

The host is whatever runs the tests: a sandbox with hybrid cgroups and no CAP_SYS_RESOURCE, a
Debian 12 host with cgroup v2 and every capability, a v1 host. Each test first finds out what
the machine is, from the kernel's own account (the cgroup mounts in /proc/self/mountinfo, the
capabilities in /proc/self/status), then expects what the code documents for that case. Every
layout the code supports is also tested on fixture trees (tests/unit/pressure/test_cgroups.py).

Real CPU pressure is easy to raise (more busy processes than cores), so the trigger path is
proven live on cpu; memory transitions are tested on fixture files (tests/unit/pressure).
"""

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from nodekeeper.pressure.cgroups import CgroupReader
from nodekeeper.pressure.psi import PsiReader
from nodekeeper.pressure.triggers import TriggerClosed, open_trigger
from tests.integration.conftest import RUN_ID, TEST_IMAGE

CGROUP_ROOT = Path("/sys/fs/cgroup")
FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "pressure" / "fixtures"
MiB = 2**20
CAP_SYS_RESOURCE = 24  # linux/capability.h


def cgroup_mounts(mountinfo: Path = Path("/proc/self/mountinfo")) -> dict[Path, str]:
    """Mount point -> ``cgroup`` (v1) or ``cgroup2``, for every cgroup filesystem mounted."""
    mounts: dict[Path, str] = {}
    for line in mountinfo.read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        fstype = rest.split()[0]
        if fstype in ("cgroup", "cgroup2"):
            mounts[Path(fields.split()[4])] = fstype
    return mounts


def this_hosts_layout() -> tuple[str, Path | None]:
    """The layout as the mounts say, and the v2 tree that holds the node's *.pressure files."""
    mounts = cgroup_mounts()
    if mounts.get(CGROUP_ROOT) == "cgroup2":
        return "v2", CGROUP_ROOT
    v1 = [
        path for path, fstype in mounts.items() if fstype == "cgroup" and path.parent == CGROUP_ROOT
    ]
    unified = CGROUP_ROOT / "unified"
    if v1:
        return ("hybrid", unified) if mounts.get(unified) == "cgroup2" else ("v1", None)
    return ("v2", unified) if mounts.get(unified) == "cgroup2" else ("none", None)


def has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def node_psi_resources(unified: Path | None) -> set[str]:
    """The resources whose pressure the node's v2 cgroup offers (none without a v2 tree)."""
    if unified is None:
        return set()
    return {name for name in ("cpu", "memory", "io") if (unified / f"{name}.pressure").is_file()}


@asynccontextmanager
async def busy_processes(count: int) -> AsyncIterator[None]:
    """``count`` processes spinning on the CPU, killed on the way out whatever happens."""
    spinners = []
    try:
        for _ in range(count):
            spinners.append(
                await asyncio.create_subprocess_exec("python3", "-c", "while True: pass")
            )
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
        for spinner in spinners:
            await spinner.wait()


async def docker(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed: {err.decode().strip()}")
    return out.decode().strip()


def test_this_hosts_psi_is_read() -> None:
    samples = PsiReader().read_all()

    for resource, sample in samples.items():
        assert sample is not None, f"/proc/pressure/{resource} is unreadable"
        assert 0.0 <= sample.some.avg10 <= 1.0
        # "full" for cpu came with Linux 5.13; memory and io always had it.
        has_full = "full " in Path(f"/proc/pressure/{resource}").read_text()
        assert (sample.full is not None) == has_full, resource
    assert samples["cpu"] is not None
    assert samples["cpu"].some.total_seconds > 0


def expect_layout(cgroups: CgroupReader, layout: str, unified: Path | None) -> None:
    """What the reader documents for a host of ``layout`` (see nodekeeper.pressure.cgroups)."""
    stats = cgroups.read(cgroups.node())

    assert cgroups.layout == layout
    assert set(stats.psi) == node_psi_resources(unified)
    if layout in ("v1", "hybrid"):
        # Memory from the v1 controller's root, which counts the whole machine.
        assert stats.memory_current_bytes is not None
        assert stats.memory_current_bytes > 0
        assert cgroups.agent().memory is not None
    elif layout == "v2":
        # The v2 root has no memory.current, memory.max or cpu.max: unknown, by design.
        assert {"memory_current_bytes", "memory_limit_bytes", "cpu_quota_cores"} <= stats.unknown
        assert cgroups.agent().memory is not None
    else:
        assert stats.memory_current_bytes is None
        assert cgroups.node().pressure is None


def test_this_hosts_cgroups_are_read_as_its_layout_says() -> None:
    layout, unified = this_hosts_layout()
    print(f"this host: cgroup layout {layout}, CAP_SYS_RESOURCE {has_cap_sys_resource()}")
    expect_layout(CgroupReader(), layout, unified)


# The same expectations on the other layouts, from fixture trees: each branch above is run here,
# whatever this machine is.
@pytest.mark.parametrize(
    ("layout", "unified"), [("v1", None), ("v2", ""), ("hybrid", "unified"), ("none", None)]
)
def test_every_layout_meets_the_expectations_the_live_test_uses(
    layout: str, unified: str | None, tmp_path: Path
) -> None:
    root = FIXTURES / f"cgroup-{layout}" if layout != "none" else tmp_path
    cgroups = CgroupReader(root=root, proc=FIXTURES / "proc")
    expect_layout(cgroups, layout, None if unified is None else root / unified)


async def test_a_psi_trigger_fires_under_real_cpu_pressure() -> None:
    _, unified = this_hosts_layout()
    # Without CAP_SYS_RESOURCE (a pod's default) the kernel refuses a 1 s window and the
    # trigger takes the next multiple of 2 s; with it, the window asked for is the one in force.
    window = 1_000_000 if has_cap_sys_resource() else 2_000_000
    specs = [f"some 500000 {window}"]
    async with contextlib.AsyncExitStack() as stack:
        node = open_trigger(Path("/proc/pressure/cpu"), stall_us=500_000, window_us=1_000_000)
        triggers = [await stack.enter_async_context(node)]
        if "cpu" in node_psi_resources(unified):  # the node's v2 cgroup, where there is one
            assert unified is not None
            cgroup = open_trigger(unified / "cpu.pressure", stall_us=500_000, window_us=2_000_000)
            triggers.append(await stack.enter_async_context(cgroup))
            specs.append("some 500000 2000000")
        assert [trigger.spec for trigger in triggers] == specs
        started = time.monotonic()
        async with busy_processes(3 * (os.cpu_count() or 2)), asyncio.timeout(30):
            await asyncio.gather(*(trigger.wait() for trigger in triggers))
        elapsed = time.monotonic() - started

    for trigger in triggers:
        assert trigger.fired_count >= 1, trigger
        assert trigger.closed
    print(f"{len(triggers)} trigger(s) fired {elapsed:.2f} s after the load started")


async def test_a_closed_trigger_wakes_its_waiter_with_trigger_closed() -> None:
    trigger = open_trigger(Path("/proc/pressure/cpu"), stall_us=1_000_000, window_us=2_000_000)
    waiter = asyncio.create_task(trigger.wait())
    await asyncio.sleep(0)  # let the waiter block on the trigger
    trigger.close()

    async with asyncio.timeout(5):
        with pytest.raises(TriggerClosed):
            await waiter
    with pytest.raises(TriggerClosed):
        await trigger.wait()


async def test_a_docker_containers_cgroup_has_its_memory_limit() -> None:
    container_id = await docker(
        "run",
        "-d",
        "--memory",
        "64m",
        "--label",
        f"nodekeeper.io/test-run={RUN_ID}",
        TEST_IMAGE,
        "sleep",
        "30",
    )
    try:
        cgroups = CgroupReader()
        cgroup = cgroups.container(container_id)
        assert cgroup is not None, f"no cgroup found for container {container_id[:12]}"
        stats = cgroups.read(cgroup)

        assert stats.memory_limit_bytes == 64 * MiB
        assert stats.memory_current_bytes is not None
        assert stats.memory_current_bytes > 0
        assert stats.oom_kill_events == 0
        # PSI per container only where a v2 tree exists (v2, or hybrid's unified/).
        assert ("cpu" in stats.psi) == (this_hosts_layout()[1] is not None)
    finally:
        await docker("rm", "-f", container_id)


async def test_a_trigger_on_a_removed_containers_cgroup_ends_with_trigger_closed() -> None:
    container_id = await docker(
        "run", "-d", "--label", f"nodekeeper.io/test-run={RUN_ID}", TEST_IMAGE, "sleep", "30"
    )
    removed = False
    try:
        cgroup = CgroupReader().container(container_id)
        assert cgroup is not None
        if this_hosts_layout()[1] is None:
            # A v1-only host: no container has a pressure file, so no trigger is offered.
            assert cgroup.pressure is None
            return
        assert cgroup.pressure is not None
        async with open_trigger(
            cgroup.pressure / "cpu.pressure", stall_us=500_000, window_us=2_000_000
        ) as trigger:
            await docker("rm", "-f", container_id)
            removed = True
            async with asyncio.timeout(15):
                with pytest.raises(TriggerClosed, match="went away"):
                    await trigger.wait()
    finally:
        if not removed:
            await docker("rm", "-f", container_id)


async def test_the_pressure_command_shows_a_running_workloads_figures() -> None:
    container_id = await docker(
        "run",
        "-d",
        "--memory",
        "64m",
        "--label",
        f"nodekeeper.io/test-run={RUN_ID}",
        "--label",
        f"nodekeeper.io/workload-uid=uid-{RUN_ID}",
        "--label",
        "nodekeeper.io/namespace=team-a",
        "--label",
        f"nodekeeper.io/name=web-{RUN_ID}",
        TEST_IMAGE,
        "sleep",
        "30",
    )
    try:
        command = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "nodekeeper.cli",
            "pressure",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        async with asyncio.timeout(60):
            out, err = await command.communicate()
        assert command.returncode == 0, err.decode()
        report = json.loads(out)

        assert report["workloads"]["skipped"] is None
        [mine] = [c for c in report["workloads"]["containers"] if c["container_id"] == container_id]
        assert (mine["namespace"], mine["name"]) == ("team-a", f"web-{RUN_ID}")
        assert mine["cgroup"]["memory_limit_bytes"] == 64 * MiB
        assert report["conditions_basis"] == "instantaneous"
        assert len(report["conditions"]) == 3
    finally:
        await docker("rm", "-f", container_id)
