"""The agent's settings: one pydantic object, filled from flags, then environment, then defaults.

Every setting has an environment variable ``NODEKEEPER_<NAME>`` and a flag ``--<name>``; the node
name also comes from ``NODE_NAME`` (what the chart sets from the downward API). An invalid or
missing setting ends start-up with one line naming the setting and what it expects
(:class:`SettingsError`), never with a traceback.
"""

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from nodekeeper.api.common import DNS_SUBDOMAIN_PATTERN

ENV_PREFIX = "NODEKEEPER_"

# What the JSON-valued settings hold, for the one line that rejects a value that is not JSON.
JSON_SHAPES = {
    "image_policy": 'a JSON object of namespace to a list of image patterns, e.g. {"*": ["*"]}',
    "log_include": 'a JSON list of rules, e.g. ["namespace=prod-*"]',
    "log_exclude": 'a JSON list of rules, e.g. ["namespace=kube-system"]',
}


class SettingsError(Exception):
    """A setting is missing or invalid; the message is one line a user can act on."""


class Settings(BaseSettings):
    """Everything the agent can be told. docs/reference.md lists these; a test keeps it true."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    node_name: str = Field(
        default="",
        validation_alias=AliasChoices("NODEKEEPER_NODE_NAME", "NODE_NAME", "node_name"),
        description="This agent's Node; the chart sets it from the downward API (NODE_NAME).",
    )
    pod_name: str = Field(
        default="",
        validation_alias=AliasChoices("NODEKEEPER_POD_NAME", "POD_NAME", "pod_name"),
        description="The agent's own pod (the chart sets POD_NAME): its containers' logs are "
        "not collected.",
    )
    kubeconfig: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("NODEKEEPER_KUBECONFIG", "KUBECONFIG", "kubeconfig"),
        description="Kubeconfig file (also read from KUBECONFIG); unset: in-cluster account.",
    )
    api_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait for the agent's own Kubernetes API calls (connect, then each "
        "read) before one fails and is retried; kopf's watches have their own.",
    )
    http_host: str = Field(default="0.0.0.0", description="Address of /metrics, /healthz, /readyz.")
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of that server (0: any)."
    )
    api_auth: Literal["kubernetes", "none"] = Field(
        default="kubernetes",
        description="Who may call /api/: kubernetes (a bearer token allowed get on nodekeeper.io "
        "nodes/logs for this node, by TokenReview and SubjectAccessReview); none (offline use).",
    )
    api_auth_allowed_ttl_seconds: float = Field(
        default=120.0, ge=0, description="How long an allowed token's decision is reused."
    )
    api_auth_denied_ttl_seconds: float = Field(
        default=10.0, ge=0, description="How long a refused token's decision is reused."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Least severe log level written."
    )
    log_format: Literal["json", "text"] = Field(
        default="json", description="json: one JSON object a line; text: for humans."
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock", description="Docker Engine API endpoint."
    )
    # NoDecode: the environment's string reaches _from_json, like a flag's, instead of being
    # JSON-decoded by pydantic-settings, whose error is a traceback.
    image_policy: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=lambda: {"*": ["*"]},
        description="Images each namespace may run, as JSON: namespace (or *) to shell patterns, "
        'e.g. {"team-a": ["registry.example/team-a/*"], "*": []}.',
    )
    gc_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often orphaned containers are looked for."
    )
    gc_grace_seconds: float = Field(
        default=30.0, ge=0, description="A container younger than this is never an orphan."
    )
    state_dir: Path = Field(
        default=Path("/var/lib/nodekeeper"),
        description="The agent's own state: the log store (logs.db) and crash reports.",
    )
    crash_reports_kept: int = Field(
        default=10, ge=1, description="Crash reports kept in state_dir; older ones are removed."
    )
    docker_root: Path = Field(
        default=Path("/var/lib/docker"),
        description="Docker's data root; its disk use counts for admission.",
    )
    proc_root: Path = Field(default=Path("/proc"), description="Where the host's /proc is.")
    cgroup_root: Path = Field(
        default=Path("/sys/fs/cgroup"), description="Where the host's cgroup tree is."
    )
    pressure_enter_ratio: float = Field(
        default=0.10, gt=0, le=1, description="PSI some avg10 at or above which pressure starts."
    )
    pressure_exit_ratio: float = Field(
        default=0.05, gt=0, le=1, description="PSI some avg10 below which pressure ends."
    )
    pressure_sustain_seconds: float = Field(
        default=10.0, ge=0, description="How long PSI must stay past a threshold to flip."
    )
    pressure_sample_seconds: float = Field(
        default=5.0, gt=0, description="Periodic PSI sampling interval (triggers wake it early)."
    )
    pressure_trigger_stall_us: int = Field(
        default=200_000, ge=0, description="PSI trigger: stall (µs) within the window; 0 disables."
    )
    pressure_trigger_window_us: int = Field(
        default=1_000_000,
        ge=500_000,
        le=10_000_000,  # the kernel refuses a longer window (kernel/sched/psi.c)
        description="PSI trigger window (µs); without CAP_SYS_RESOURCE rounded up to 2 s.",
    )
    node_heartbeat_seconds: float = Field(
        default=60.0, gt=0, description="How often the Node conditions' lastHeartbeatTime moves."
    )
    admission_memory_ratio: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description="Refuse new Workloads at this node memory use (1: off).",
    )
    admission_cpu_ratio: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description="Refuse new Workloads at this load average per core (1: off).",
    )
    admission_disk_ratio: float = Field(
        default=0.80,
        gt=0,
        le=1,
        description="Refuse new Workloads at this Docker disk use (1: off).",
    )
    memory_limit_bytes: int = Field(
        default=0, ge=0, description="The agent's memory limit when its cgroup has none; 0: none."
    )
    backup_log_cap_bytes: int = Field(
        default=8 * 2**20,
        gt=0,
        description="Largest BackupRun log kept in ConfigMaps; beyond it head and tail are kept.",
    )
    backup_succeeded_history_limit: int = Field(
        default=10, ge=0, description="Succeeded BackupRuns kept per namespace, policy and node."
    )
    backup_failed_history_limit: int = Field(
        default=5, ge=0, description="Failed BackupRuns kept per namespace, policy and node."
    )
    workloads_enabled: bool = Field(
        default=True, description="Run this node's Workloads (needs the Docker socket)."
    )
    backup_runs_enabled: bool = Field(
        default=True, description="Run this node's BackupRuns (needs the Docker socket)."
    )
    offline: bool = Field(
        default=False,
        description="Run without Kubernetes: the log pipeline, pressure sampling and metrics only.",
    )
    log_containers_dir: Path = Field(
        default=Path("/var/lib/docker/containers"),
        description="Where Docker keeps each container's config and json-file log.",
    )
    log_include: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Containers whose logs are kept, as JSON rules name=, image=, namespace= or "
        'label:KEY= with shell patterns, e.g. ["namespace=prod-*"]; empty: all.',
    )
    log_exclude: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Containers whose logs are skipped (same rules; wins over include). The "
        "agent's own container is always skipped.",
    )
    log_read_from_head: bool = Field(
        default=True,
        description="Read containers found at the first start from their first line (false: "
        "from the end). Containers born later are always read from the first line.",
    )
    log_max_line_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Longest stored line; longer ones are cut, flagged and counted.",
    )
    log_read_chunk_bytes: int = Field(
        default=256 * 1024, ge=4096, description="Bytes read and parsed at a time per file."
    )
    log_queue_bytes: int = Field(
        default=32 * 2**20,
        ge=2**20,
        description="Read bytes waiting for the store; past it readers pause (never drop).",
    )
    log_store_sync: Literal["normal", "full"] = Field(
        default="normal",
        description="normal: each batch survives a crash of the agent; full: also of the "
        "machine (an fsync per batch).",
    )
    log_retention_seconds: float = Field(
        default=7 * 86400.0, gt=0, description="Stored lines older than this are deleted."
    )
    log_store_max_bytes: int = Field(
        default=2 * 2**30,
        ge=2**20,
        description="Largest log store; the oldest lines go first past it.",
    )
    log_max_watches: int = Field(
        default=8192,
        ge=1,
        description="inotify watches the agent uses at most; past it containers are polled.",
    )
    log_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often every log is checked besides inotify."
    )
    log_read_linger_seconds: float = Field(
        default=0.1,
        ge=0,
        le=5,
        description="After a quiet spell, wait this long for more lines before reading (CPU "
        "against latency).",
    )
    log_event_pace_seconds: float = Field(
        default=0.15,
        ge=0,
        le=1,
        description="Take inotify events at most this often, all queued ones at once (CPU "
        "against latency); off while a container rotates below 8 MiB (max-size).",
    )
    log_write_linger_seconds: float = Field(
        default=0.05,
        ge=0,
        le=5,
        description="After a quiet spell, wait this long for more batches before a store "
        "transaction.",
    )
    log_drain_timeout_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Longest wait for a container's last log line before it is removed anyway.",
    )
    shutdown_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Deadline for a clean stop after SIGTERM."
    )

    @field_validator("image_policy", "log_include", "log_exclude", mode="before")
    @classmethod
    def _from_json(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:  # a ValueError becomes a one-line SettingsError
            shape = JSON_SHAPES[info.field_name or ""]
            raise ValueError(f"not JSON ({e.msg}): expected {shape}") from e

    @field_validator("node_name")
    @classmethod
    def _node_name_shape(cls, value: str) -> str:
        if value and not re.fullmatch(DNS_SUBDOMAIN_PATTERN, value):
            raise ValueError("a Node name is lowercase letters, digits, '-' and '.'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Settings valid alone that contradict each other, caught here rather than as a
        traceback where they are used (docs/reference.md names each pair)."""
        if self.pressure_exit_ratio > self.pressure_enter_ratio:
            raise _conflict(
                self,
                "pressure_exit_ratio",
                "pressure_enter_ratio",
                "the exit ratio must be at most the enter ratio",
            )
        if self.pressure_trigger_stall_us > self.pressure_trigger_window_us:
            raise _conflict(
                self,
                "pressure_trigger_stall_us",
                "pressure_trigger_window_us",
                "the stall must fit in the window (0 disables triggers)",
            )
        return self

    def require_node(self) -> None:
        if not self.node_name:
            raise SettingsError(
                "setting node_name is missing: the chart sets NODE_NAME from spec.nodeName; "
                f"by hand set {' or '.join(env_names('node_name'))} or pass --node-name"
            )


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def env_names(field: str) -> list[str]:
    """Every environment variable ``field`` is read from, the one that wins first."""
    aliases = Settings.model_fields[field].validation_alias
    if isinstance(aliases, AliasChoices):
        return [name for name in aliases.choices if isinstance(name, str) and name.isupper()]
    return [env_name(field)]


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def _where(field: str) -> str:
    return f"{', '.join(env_names(field))} or {flag_name(field)}"


def _conflict(settings: Settings, field: str, other: str, rule: str) -> PydanticCustomError:
    """The one line for two settings that cannot hold together, with both values."""
    message = (
        f"setting {field} ({_where(field)}) contradicts {other} ({_where(other)}): {rule}; "
        f"got {getattr(settings, field)!r} and {getattr(settings, other)!r}"
    )
    # A template to pydantic: no values of ours hold braces (they are numbers).
    return PydanticCustomError("settings_conflict", message)


def load(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment, with ``overrides`` (parsed flags) taking precedence."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as e:
        raise SettingsError(describe(e)) from e


def describe(error: ValidationError) -> str:
    """One line: which setting is wrong, where it can be set, and what it expects."""
    first = error.errors()[0]
    if first["type"] == "settings_conflict":
        return first["msg"]  # says it all: see _conflict
    field = _field_of(str(first["loc"][0])) if first["loc"] else "?"
    got = first.get("input")
    expected = first["msg"]
    where = ", ".join(env_names(field)) if field in Settings.model_fields else env_name(field)
    return f"setting {field} ({where} or {flag_name(field)}) is invalid: {expected}; got {got!r}"


def _field_of(location: str) -> str:
    """The field name behind an error location, which may be an alias such as NODE_NAME."""
    for name, info in Settings.model_fields.items():
        aliases = info.validation_alias
        if name == location or (isinstance(aliases, AliasChoices) and location in aliases.choices):
            return name
    return location
