"""Pieces both kinds share: node names, environment variables, secret references."""

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

# A Node name is a DNS subdomain (RFC 1123), at most 253 characters.
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ENV_NAME_PATTERN = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"


def _immutable(message: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": "self == oldSelf", "message": message}]}


NodeName = Annotated[
    str,
    Field(
        description=(
            "The node whose nodekeeper agent owns this object. Required and immutable: "
            "to move the object to another node, delete it and create it again."
        ),
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN_PATTERN,
        json_schema_extra=_immutable("nodeName is immutable; delete and recreate the object"),
    ),
]


class Model(BaseModel):
    """Base of every API model: unknown fields are ignored, as the API server prunes them."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class EnvVar(Model):
    """One environment variable of the container, written inline."""

    name: str = Field(
        description="Variable name.", min_length=1, max_length=256, pattern=ENV_NAME_PATTERN
    )
    value: str = Field(default="", description="The value.")
