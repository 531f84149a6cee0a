"""Records, batches and containers for the log store tests, built the way the pipeline does."""

import os

import orjson

from nodekeeper.api.times import NANOS, docker_time_ns, rfc3339_ns
from nodekeeper.logs.records import Batch, Checkpoint, ContainerInfo, FilePosition

T0 = 1_790_000_000 * NANOS  # 2026-09-21T...Z


def record(text: str, *, at_ns: int = T0, stream: str = "stdout", nk: int = 0) -> bytes:
    """A json-file record as Docker writes it (Go escapes <, >, & too)."""
    fields: dict[str, object] = {"log": text, "stream": stream, "time": _docker_time(at_ns)}
    if nk:
        fields["nk"] = nk
    encoded = orjson.dumps(fields)
    return encoded.replace(b"<", b"\\u003c").replace(b">", b"\\u003e").replace(b"&", b"\\u0026")


def _docker_time(ns: int) -> str:
    whole, fraction = rfc3339_ns(ns)[:-1].split(".")
    fraction = fraction.rstrip("0")
    return f"{whole}.{fraction}Z" if fraction else f"{whole}Z"


def numbered(container_id: str, first: int, count: int, *, at_ns: int = T0) -> list[bytes]:
    """Records ``<container> <n>`` one millisecond apart, n from ``first``."""
    return [
        record(f"{container_id} {n}\n", at_ns=at_ns + n * 1_000_000)
        for n in range(first, first + count)
    ]


def noise(container_id: str, first: int, count: int, *, at_ns: int = T0) -> list[bytes]:
    """Numbered records padded with random hex: they hardly compress (to fill a disk)."""
    return [
        record(f"{container_id} {n} {os.urandom(64).hex()}\n", at_ns=at_ns)
        for n in range(first, first + count)
    ]


def checkpoint(container_id: str, offset: int, **changes: object) -> Checkpoint:
    position = FilePosition(
        path=f"/var/lib/docker/containers/{container_id}/{container_id}-json.log",
        device=2049,
        inode=4242,
        fingerprint=b'{"log":"first line\\n"}\x00\xff',
        offset=offset,
    )
    return Checkpoint(container_id=container_id, position=position, **changes)  # type: ignore[arg-type]


def batch(container_id: str, records: list[bytes], offset: int) -> Batch:
    times = [orjson.loads(r)["time"] for r in records]
    first = docker_time_ns(times[0]) if times else 0
    last = docker_time_ns(times[-1]) if times else 0
    return Batch(
        container_id=container_id,
        records=records,
        first_ns=first,
        last_ns=last,
        read_bytes=sum(len(r) + 1 for r in records),
        checkpoint=checkpoint(container_id, offset),
    )


def container(
    container_id: str,
    name: str,
    *,
    namespace: str = "",
    pod: str = "",
    workload: str = "",
) -> ContainerInfo:
    labels = {}
    if namespace:
        labels["io.kubernetes.pod.namespace"] = namespace
    if pod:
        labels["io.kubernetes.pod.name"] = pod
    if workload:
        labels["nodekeeper.io/workload-uid"] = "uid-" + workload
        labels["nodekeeper.io/name"] = workload
    return ContainerInfo(
        id=container_id,
        name=name,
        image="example/app:1.0",
        labels=labels,
        log_driver="json-file",
        log_path=f"/var/lib/docker/containers/{container_id}/{container_id}-json.log",
    )
