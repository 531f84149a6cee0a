"""The watcher turns real inotify events under a Docker-shaped root into coalesced notifications.

Everything here uses real directories in tmp_path and the kernel's inotify. Waiting is always on
the watcher's iterator with a timeout; to show that something was *not* reported, the test makes
a later event and checks what arrived before it (the kernel queue is ordered).
"""

import asyncio
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncinotify import Inotify

from nodekeeper.logs.watcher import Changed, Watcher, WatchError

A, B, C = "aa" * 32, "bb" * 32, "cc" * 32
TIMEOUT = 5.0


def make_container(root: Path, container_id: str) -> Path:
    directory = root / container_id
    directory.mkdir()
    (directory / "config.v2.json").write_text(f'{{"ID": "{container_id}"}}')
    (directory / "hostconfig.json").write_text('{"LogConfig": {"Type": "json-file"}}')
    (directory / f"{container_id}-json.log").touch()
    return directory


def log(root: Path, container_id: str, suffix: str = "") -> Path:
    return root / container_id / f"{container_id}-json.log{suffix}"


def append(path: Path, text: str = '{"log":"x\\n","stream":"stdout","time":"t"}\n') -> None:
    with path.open("a") as file:
        file.write(text)


def kernel_watches(watcher: Watcher) -> int:
    """Watches the kernel holds for this inotify instance, from /proc/self/fdinfo."""
    fdinfo = Path(f"/proc/self/fdinfo/{watcher.fileno()}").read_text()
    return sum(line.startswith("inotify wd:") for line in fdinfo.splitlines())


def kernel_watched(watcher: Watcher, root: Path) -> set[str]:
    """The containers under ``root`` whose folder the kernel watches for this instance."""
    fdinfo = Path(f"/proc/self/fdinfo/{watcher.fileno()}").read_text()
    inodes = {int(ino, 16) for ino in re.findall(r"^inotify wd:\S+ ino:([0-9a-f]+)", fdinfo, re.M)}
    return {path.name for path in root.iterdir() if path.stat().st_ino in inodes}


def kernel_queue_limit() -> int:
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


async def next_changes(watcher: Watcher) -> frozenset[Changed]:
    return await asyncio.wait_for(anext(watcher), TIMEOUT)


async def until(watcher: Watcher, wanted: Changed) -> list[frozenset[Changed]]:
    """Every set of notifications up to and including the one that holds ``wanted``."""
    seen: list[frozenset[Changed]] = []
    while not seen or wanted not in seen[-1]:
        seen.append(await next_changes(watcher))
    return seen


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "containers"
    path.mkdir()
    return path


@pytest.fixture
def watcher(root: Path) -> Iterator[Watcher]:
    with Watcher(root, max_watches=100) as watcher:
        yield watcher


@pytest.fixture
async def watching_a(root: Path, watcher: Watcher) -> Watcher:
    make_container(root, A)
    assert watcher.add(A) == "watched"
    await until(watcher, Changed(A, "new"))  # the mkdir seen by the root watch
    return watcher


class TestContainers:
    async def test_a_new_container_directory(self, root: Path, watcher: Watcher) -> None:
        (root / A).mkdir()
        assert await next_changes(watcher) == {Changed(A, "new")}

    async def test_a_directory_moved_into_the_root(
        self, root: Path, tmp_path: Path, watcher: Watcher
    ) -> None:
        (tmp_path / A).mkdir()
        os.rename(tmp_path / A, root / A)
        assert await next_changes(watcher) == {Changed(A, "new")}

    async def test_files_in_the_root_are_not_containers(self, root: Path, watcher: Watcher) -> None:
        (root / "stray-file").touch()
        (root / A).mkdir()
        assert await next_changes(watcher) == {Changed(A, "new")}

    async def test_a_container_not_followed_is_reported_gone(
        self, root: Path, watcher: Watcher
    ) -> None:
        (root / A).mkdir()
        await until(watcher, Changed(A, "new"))
        (root / A).rmdir()
        assert await next_changes(watcher) == {Changed(A, "gone")}

    async def test_adding_a_container_already_removed(self, root: Path, watcher: Watcher) -> None:
        assert watcher.add(A) == "gone"
        assert await next_changes(watcher) == {Changed(A, "gone")}
        assert kernel_watched(watcher, root) == set()
        assert watcher.polled() == set()


class TestLogData:
    async def test_an_append(self, root: Path, watching_a: Watcher) -> None:
        append(log(root, A))
        assert await next_changes(watching_a) == {Changed(A, "data")}

    async def test_ten_thousand_appends_wake_the_pipeline_a_few_times(
        self, root: Path, watching_a: Watcher
    ) -> None:
        make_container(root, B)
        watching_a.add(B)
        await until(watching_a, Changed(B, "new"))
        # Alternating between two files defeats the kernel's merging of identical events:
        # 10,000 events reach the queue and the watcher must fold them itself.
        with log(root, A).open("a") as a, log(root, B).open("a") as b:
            for _ in range(5_000):
                a.write("a\n")
                a.flush()
                b.write("b\n")
                b.flush()
        (root / A / "hostconfig.json").write_text("{}")  # CLOSE_WRITE: a config marker
        seen = await until(watching_a, Changed(A, "config"))
        assert len(seen) <= 2
        assert set().union(*seen) == {Changed(A, "data"), Changed(B, "data"), Changed(A, "config")}

    async def test_rotation(self, root: Path, watching_a: Watcher) -> None:
        append(log(root, A))
        await until(watching_a, Changed(A, "data"))
        os.rename(log(root, A), log(root, A, ".1"))  # json-file rotates by rename...
        assert await next_changes(watching_a) == {Changed(A, "data")}
        log(root, A).touch()  # ...then creates the live file again
        assert await next_changes(watching_a) == {Changed(A, "data")}
        log(root, A, ".1").unlink()  # past max-file, the oldest goes
        assert await next_changes(watching_a) == {Changed(A, "data")}

    async def test_compression_of_a_rotated_file(self, root: Path, watching_a: Watcher) -> None:
        log(root, A, ".1.gz").write_bytes(b"\x1f\x8b")
        assert await next_changes(watching_a) == {Changed(A, "data")}

    async def test_other_files_in_the_directory_are_not_data(
        self, root: Path, watching_a: Watcher
    ) -> None:
        (root / A / "hostname").write_text("aa\n")
        (root / A / "resolv.conf").write_text("nameserver 10.0.0.1\n")
        append(log(root, A))
        assert await next_changes(watching_a) == {Changed(A, "data")}

    async def test_a_drain_limit_leaves_nothing_behind(self, root: Path) -> None:
        # one event per turn: the rest wait in asyncinotify's buffer, where the fd is quiet
        with Watcher(root, max_watches=10, drain_limit=1) as watcher:
            for container_id in (A, B, C):
                (root / container_id).mkdir()
            seen = [await next_changes(watcher) for _ in range(3)]
            assert seen == [{Changed(A, "new")}, {Changed(B, "new")}, {Changed(C, "new")}]


class TestConfig:
    async def test_replaced_by_rename_as_dockerd_does(
        self, root: Path, watching_a: Watcher
    ) -> None:
        temporary = root / A / ".tmp-config.v2.json123"
        temporary.write_text(f'{{"ID": "{A}", "Name": "/renamed"}}')
        os.rename(temporary, root / A / "config.v2.json")
        assert await next_changes(watching_a) == {Changed(A, "config")}

    async def test_hostconfig_too(self, root: Path, watching_a: Watcher) -> None:
        temporary = root / A / ".tmp-hostconfig.json9"
        temporary.write_text('{"LogConfig": {"Type": "local"}}')
        os.rename(temporary, root / A / "hostconfig.json")
        assert await next_changes(watching_a) == {Changed(A, "config")}

    async def test_written_in_place_is_reported_once_closed(
        self, root: Path, watching_a: Watcher
    ) -> None:
        with (root / A / "config.v2.json").open("w") as config:
            config.write('{"ID": ')
            config.flush()
            append(log(root, A))  # queued after the half write
            assert await next_changes(watching_a) == {Changed(A, "data")}
            config.write(f'"{A}"}}')
        assert await next_changes(watching_a) == {Changed(A, "config")}

    async def test_the_first_write_of_a_new_container(self, root: Path, watcher: Watcher) -> None:
        # the directory exists before its config: the pipeline watches it to learn when to read
        (root / A).mkdir()
        watcher.add(A)
        await until(watcher, Changed(A, "new"))
        (root / A / "config.v2.json").write_text("{}")
        assert await next_changes(watcher) == {Changed(A, "config")}


class TestRemoval:
    async def test_a_removed_directory_is_gone_and_its_watch_released(
        self, root: Path, watching_a: Watcher
    ) -> None:
        assert kernel_watches(watching_a) == 2  # the root and A
        append(log(root, A))
        shutil.rmtree(root / A)
        seen = await until(watching_a, Changed(A, "gone"))
        assert Changed(A, "gone") in seen[-1]
        assert kernel_watched(watching_a, root) == set()
        assert kernel_watches(watching_a) == 1
        # asyncinotify drops its own record of a watch on IN_IGNORED: nothing left there either
        assert [w.path for w in watching_a._inotify.watches] == [root]

    async def test_remove_releases_the_watch(self, root: Path, watching_a: Watcher) -> None:
        watching_a.remove(A)
        assert kernel_watches(watching_a) == 1
        append(log(root, A))  # no longer reported...
        (root / B).mkdir()  # ...before this
        assert await next_changes(watching_a) == {Changed(B, "new")}
        assert [w.path for w in watching_a._inotify.watches] == [root]

    async def test_remove_after_the_directory_went(self, root: Path, watching_a: Watcher) -> None:
        shutil.rmtree(root / A)
        watching_a.remove(A)  # the kernel already dropped the watch: no error
        (root / B).mkdir()
        seen = await until(watching_a, Changed(B, "new"))
        assert Changed(A, "gone") in set().union(*seen)  # from the root's watch
        assert kernel_watches(watching_a) == 1

    async def test_the_root_removed(self, root: Path, watcher: Watcher) -> None:
        shutil.rmtree(root)
        assert Changed(None, "gone") in await next_changes(watcher)

    def test_a_missing_root_cannot_be_watched(self, tmp_path: Path) -> None:
        with pytest.raises(WatchError, match="cannot watch"):
            Watcher(tmp_path / "absent", max_watches=1)

    async def test_close_ends_the_iteration(self, root: Path, watcher: Watcher) -> None:
        async def consume() -> list[frozenset[Changed]]:
            return [changes async for changes in watcher]

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)  # one step: nothing is queued, so the consumer is now waiting
        assert watcher._waiter is not None
        watcher.close()
        assert await asyncio.wait_for(consumer, TIMEOUT) == []


class TestBoundedWatches:
    async def test_past_the_limit_a_container_is_polled(self, root: Path) -> None:
        for container_id in (A, B, C):
            make_container(root, container_id)
        with Watcher(root, max_watches=2) as watcher:
            assert [watcher.add(c) for c in (A, B, C)] == ["watched", "watched", "polled"]
            assert watcher.polled() == {C}
            assert watcher.fallbacks == 1
            assert watcher.add(C) == "polled"  # idempotent: counted once
            assert watcher.fallbacks == 1
            assert kernel_watches(watcher) == 3  # the root, A, B

            append(log(root, C))  # polled: inotify says nothing...
            append(log(root, A))
            assert await next_changes(watcher) == {Changed(A, "data")}

    async def test_a_freed_watch_goes_to_a_polled_container(self, root: Path) -> None:
        for container_id in (A, B, C):
            make_container(root, container_id)
        with Watcher(root, max_watches=2) as watcher:
            for container_id in (A, B, C):
                watcher.add(container_id)
            watcher.remove(A)
            # announced as data: whatever it wrote since the pipeline's last poll is read now
            assert await next_changes(watcher) == {Changed(C, "data")}
            assert watcher.polled() == set()
            assert kernel_watched(watcher, root) == {B, C}
            append(log(root, C))
            assert await next_changes(watcher) == {Changed(C, "data")}

    async def test_a_deleted_container_frees_its_watch(self, root: Path) -> None:
        for container_id in (A, B, C):
            make_container(root, container_id)
        with Watcher(root, max_watches=2) as watcher:
            for container_id in (A, B, C):
                watcher.add(container_id)
            shutil.rmtree(root / A)
            seen = await until(watcher, Changed(C, "data"))
            assert Changed(A, "gone") in set().union(*seen)
            assert kernel_watched(watcher, root) == {B, C}
            assert kernel_watches(watcher) == 3

    async def test_the_kernel_refusing_a_watch_polls_the_same_way(
        self, root: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # A real ENOSPC needs fs.inotify.max_user_watches lowered for the whole user: not here.
        make_container(root, A)
        with Watcher(root, max_watches=100) as watcher:

            def refuse(self: Inotify, path: object, mask: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device")

            monkeypatch.setattr(Inotify, "add_watch", refuse)  # its instances have __slots__
            assert watcher.add(A) == "polled"
            assert watcher.polled() == {A}
            assert watcher.fallbacks == 1


class TestOverflow:
    async def test_lost_events_report_every_watched_container(
        self, root: Path, watching_a: Watcher
    ) -> None:
        make_container(root, B)
        watching_a.add(B)
        await until(watching_a, Changed(B, "new"))
        # writes alternating between two files are never merged by the kernel: one event each
        with (root / A / "x").open("wb", 0) as x, (root / A / "y").open("wb", 0) as y:
            for _ in range(kernel_queue_limit() // 2 + 100):
                x.write(b".")
                y.write(b".")
        seen = await until(watching_a, Changed(None, "new"))
        assert {
            Changed(A, "data"),
            Changed(A, "config"),
            Changed(B, "data"),
            Changed(B, "config"),
        } <= set().union(*seen)
        assert watching_a.overflows == 1


class TestPacing:
    async def test_writes_within_the_pace_come_as_one_batch(
        self, root: Path, watcher: Watcher
    ) -> None:
        # The pace only bounds how long the test may take between the two writes (a hang guard
        # against a loaded machine); nothing waits for it to pass but the watcher itself.
        with Watcher(root, max_watches=100, pace=lambda: 3.0) as paced:
            for container_id in (A, B):
                make_container(root, container_id)
                assert paced.add(container_id) == "watched"
                assert watcher.add(container_id) == "watched"
            await until(paced, Changed(B, "new"))  # a batch was handed out: the pace starts
            await until(watcher, Changed(B, "new"))
            waiting = asyncio.create_task(next_changes(paced))
            await asyncio.sleep(0)  # one step: it is now waiting out its pace
            append(log(root, A))
            # An unpaced watcher on the same loop saw A's write: a paced one that did not
            # wait would have handed A out alone by now.
            await until(watcher, Changed(A, "data"))
            assert not waiting.done()
            append(log(root, B))
            assert await waiting == {Changed(A, "data"), Changed(B, "data")}
