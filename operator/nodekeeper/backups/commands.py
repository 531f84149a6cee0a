"""What ``nodekeeper backups list|show|logs|ingest`` do; cli.py only parses flags and prints.

``ingest`` order, and why nothing is lost when it stops half-way:

1. create the BackupRun with ``spec.result`` (without the log) and the annotation
   ``nodekeeper.io/log-chunks: N``, the number of chunks its log will have;
2. write the N chunk ConfigMaps, owned by the run (an owner reference needs the run's uid,
   so the run comes first);
3. nothing more: the node's agent writes the status (it is the only status writer). It waits
   until the N announced chunks exist before recording the run, so a recorded run never shows
   half a log; after two minutes it records what is there and says the log is incomplete.

Stopped after 1, the run exists and the agent waits; running the same ``ingest`` again finds the
run (same taskId), writes the chunks, and the agent records it. Every write is idempotent
(create-or-reuse, server-side apply), so repeating ``ingest`` changes nothing further.
"""

import dataclasses
import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from nodekeeper.api import API_VERSION
from nodekeeper.api.backuprun import KIND, BackupResult, BackupRunSpec
from nodekeeper.api.names import ANNOTATION_LOG_CHUNKS, LABEL_PHASE, LABEL_POLICY
from nodekeeper.api.refs import ObjectRef
from nodekeeper.api.times import parse_seconds
from nodekeeper.backups.runlogs import RunLogs
from nodekeeper.kube.backupruns import BackupRuns
from nodekeeper.kube.errors import KubeConflict

Output = Literal["table", "json"]


class IngestError(Exception):
    """The result cannot be ingested; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class ListFilters:
    namespace: str | None = None  # None: all namespaces
    policy: str | None = None
    phase: str | None = None
    node: str | None = None
    task_type: str | None = None
    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    limit: int | None = None
    continue_token: str | None = None

    def label_selector(self) -> str | None:
        parts = []
        if self.policy:
            parts.append(f"{LABEL_POLICY}={self.policy}")
        if self.phase:
            parts.append(f"{LABEL_PHASE}={self.phase}")
        return ",".join(parts) or None

    def field_selector(self) -> str | None:
        return f"spec.nodeName={self.node}" if self.node else None

    def keeps(self, run: Mapping[str, Any]) -> bool:
        """Filters the API server cannot apply (task type, time range)."""
        spec = run.get("spec") or {}
        if self.task_type and spec.get("taskType") != self.task_type:
            return False
        created = parse_seconds((run.get("metadata") or {}).get("creationTimestamp"))
        if self.since and (created is None or created < self.since.timestamp()):
            return False
        return not (self.until and (created is None or created >= self.until.timestamp()))


async def list_runs(
    runs: BackupRuns, filters: ListFilters
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of runs (the API server's paging: pass the token back for the next page).

    A page may hold fewer than ``limit`` runs when task type or time filters drop some.
    """
    page = await runs.page(
        filters.namespace,
        label_selector=filters.label_selector(),
        field_selector=filters.field_selector(),
        limit=filters.limit,
        continue_token=filters.continue_token,
    )
    return [run for run in page.items if filters.keeps(run)], page.continue_token


def render(items: Sequence[Mapping[str, Any]], continue_token: str | None, output: Output) -> str:
    if output == "json":
        return json.dumps({"items": list(items), "continue": continue_token}, indent=2)
    header = ("NAMESPACE", "NAME", "NODE", "POLICY", "TASK", "PHASE", "DURATION", "SNAPSHOT")
    rows = [header]
    for run in items:
        meta, spec, status = run["metadata"], run.get("spec") or {}, run.get("status") or {}
        duration = status.get("durationSeconds")
        rows.append(
            (
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                str(spec.get("nodeName", "")),
                str(spec.get("policy", "")),
                str(spec.get("taskType", "")),
                str(status.get("phase") or ""),
                f"{duration:.0f}s" if isinstance(duration, int | float) else "",
                str(status.get("snapshotId") or "")[:12],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    if continue_token:
        lines.append(f"(more: --continue {continue_token})")
    return "\n".join(lines)


async def show_run(runs: BackupRuns, namespace: str, name: str) -> str:
    """The run as YAML, without managedFields (noise for a reader)."""
    run = await runs.get(namespace, name)
    run.get("metadata", {}).pop("managedFields", None)
    return yaml.safe_dump(run, sort_keys=False)


async def run_log(runs: BackupRuns, logs: RunLogs, namespace: str, name: str) -> bytes:
    """The run's whole stored log, reassembled from its ConfigMaps."""
    run = await runs.get(namespace, name)
    meta = run["metadata"]
    return await logs.load(ObjectRef(namespace=namespace, name=name, uid=meta["uid"]))


def load_result(path: Path) -> dict[str, Any]:
    """A result file (JSON or YAML) as spec.result; IngestError when it is not one."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise IngestError(f"cannot read the result file {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise IngestError(f"{path} must hold a mapping with taskId, status, durationSeconds")
    return loaded


async def ingest(
    runs: BackupRuns,
    logs: RunLogs,
    *,
    namespace: str,
    name: str,
    node: str,
    policy: str,
    task_type: str,
    result: Mapping[str, Any],
    log: bytes | None = None,
) -> dict[str, Any]:
    """Record a run executed elsewhere (see the module docstring for the order)."""
    spec_body = {
        "nodeName": node,
        "policy": policy,
        "taskType": task_type,
        # A log file goes to chunks; a result without one may carry its small log inline.
        "result": {k: v for k, v in result.items() if log is None or k != "log"},
    }
    try:
        BackupRunSpec.model_validate(spec_body)
        BackupResult.model_validate(spec_body["result"])
    except ValueError as e:
        raise IngestError(f"the result is invalid: {e}") from e
    prepared = logs.prepare(log) if log is not None else None
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if prepared is not None:
        metadata["annotations"] = {ANNOTATION_LOG_CHUNKS: str(len(prepared.chunks))}
    body = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec_body}
    try:
        run = await runs.create(namespace, body)
    except KubeConflict:
        run = await runs.get(namespace, name)  # an earlier ingest stopped half-way: finish it
        existing = ((run.get("spec") or {}).get("result") or {}).get("taskId")
        if existing != result.get("taskId"):
            raise IngestError(
                f"BackupRun {namespace}/{name} exists for task {existing!r}; pick another name"
            ) from None
    if prepared is not None:
        ref = ObjectRef(namespace=namespace, name=name, uid=run["metadata"]["uid"])
        await logs.store(ref, prepared)
    return run
