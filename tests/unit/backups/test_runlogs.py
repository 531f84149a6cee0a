"""Storing a run's log as owned ConfigMaps and reading it back."""

import os

import pytest

from nodekeeper.api.refs import ObjectRef
from nodekeeper.backups.runlogs import RunLogs, chunk_name
from tests.unit.backups.fakes import FakeConfigMaps

RUN = ObjectRef(namespace="ns", name="nightly", uid="uid-1")


async def test_a_log_is_stored_in_named_ordered_chunks_and_read_back() -> None:
    config_maps = FakeConfigMaps()
    logs = RunLogs(config_maps)
    log = os.urandom(1024 * 1024)  # incompressible: three chunks
    prepared = await logs.store(RUN, log)
    assert prepared.info() == {"bytes": len(log), "chunks": 3, "truncated": False}
    assert sorted(name for _, name in config_maps.items) == [
        "nightly-log-000",
        "nightly-log-001",
        "nightly-log-002",
    ]
    item = config_maps.items["ns", "nightly-log-001"]
    assert item.labels == {"nodekeeper.io/backuprun": "nightly"}
    assert item.annotations["nodekeeper.io/log-index"] == "1"
    assert item.owner_uids == ("uid-1",)
    assert await logs.load(RUN) == log


async def test_storing_again_rewrites_the_same_chunks_and_drops_stale_ones() -> None:
    config_maps = FakeConfigMaps()
    logs = RunLogs(config_maps)
    await logs.store(RUN, os.urandom(1024 * 1024))
    await logs.store(RUN, b"short\n")
    assert [name for _, name in config_maps.items] == ["nightly-log-000"]
    assert await logs.load(RUN) == b"short\n"


async def test_the_cap_truncates_and_says_so() -> None:
    logs = RunLogs(FakeConfigMaps(), cap_bytes=1000)
    prepared = await logs.store(RUN, b"a" * 5000)
    assert prepared.truncated
    _, info = await logs.stored(RUN)
    assert info == {"bytes": prepared.bytes, "chunks": 1, "truncated": True}


async def test_another_runs_chunks_of_the_same_name_are_not_read() -> None:
    config_maps = FakeConfigMaps()
    await RunLogs(config_maps).store(ObjectRef("ns", "nightly", "old-uid"), b"old run\n")
    assert await RunLogs(config_maps).load(RUN) == b""


async def test_a_missing_chunk_is_reported() -> None:
    config_maps = FakeConfigMaps()
    logs = RunLogs(config_maps)
    await logs.store(RUN, os.urandom(1024 * 1024))
    del config_maps.items["ns", "nightly-log-002"]
    with pytest.raises(ValueError, match="2 of 3 chunks"):
        await logs.load(RUN)


def test_chunk_names_stay_within_the_name_limit() -> None:
    assert len(chunk_name("x" * 253, 7)) == 253
    assert chunk_name("x" * 253, 7).endswith("-log-007")
