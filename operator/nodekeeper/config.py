"""The agent's settings: one pydantic object, filled from flags, then environment, then defaults.

Every setting has an environment variable ``NODEKEEPER_<NAME>`` and a flag ``--<name>``; the node
name also comes from ``NODE_NAME`` (what the chart sets from the downward API). An invalid or
missing setting ends start-up with one line naming the setting and what it expects
(:class:`SettingsError`), never with a traceback.
"""

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from nodekeeper.api.common import DNS_SUBDOMAIN_PATTERN

ENV_PREFIX = "NODEKEEPER_"


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
    kubeconfig: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("NODEKEEPER_KUBECONFIG", "KUBECONFIG", "kubeconfig"),
        description="Kubeconfig file (also read from KUBECONFIG); unset: in-cluster account.",
    )
    http_host: str = Field(default="0.0.0.0", description="Address of /metrics, /healthz, /readyz.")
    http_port: int = Field(
        default=8080, ge=0, le=65535, description="Port of that server (0: any)."
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
    image_policy: dict[str, list[str]] = Field(
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
    shutdown_timeout_seconds: float = Field(
        default=5.0, gt=0, le=60, description="Deadline for a clean stop after SIGTERM."
    )

    @field_validator("image_policy", mode="before")
    @classmethod
    def _policy_from_json(cls, value: object) -> object:
        if isinstance(value, str):
            return json.loads(value)  # a ValueError becomes a one-line SettingsError
        return value

    @field_validator("node_name")
    @classmethod
    def _node_name_shape(cls, value: str) -> str:
        if value and not re.fullmatch(DNS_SUBDOMAIN_PATTERN, value):
            raise ValueError("a Node name is lowercase letters, digits, '-' and '.'")
        return value

    def require_node(self) -> None:
        if not self.node_name:
            raise SettingsError(
                "setting node_name is missing: set NODE_NAME (the chart does, from "
                "spec.nodeName) or pass --node-name"
            )


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


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
    field = _field_of(str(first["loc"][0])) if first["loc"] else "?"
    got = first.get("input")
    expected = first["msg"]
    return (
        f"setting {field} ({env_name(field)} or {flag_name(field)}) is invalid: "
        f"{expected}; got {got!r}"
    )


def _field_of(location: str) -> str:
    """The field name behind an error location, which may be an alias such as NODE_NAME."""
    for name, info in Settings.model_fields.items():
        aliases = info.validation_alias
        if name == location or (isinstance(aliases, AliasChoices) and location in aliases.choices):
            return name
    return location
