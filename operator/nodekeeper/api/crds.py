"""Generate the CustomResourceDefinitions from the API models.

pydantic's JSON schema is close to what the API server wants but not structural: it uses
``$ref``/``$defs``, ``anyOf`` with null for optional fields, titles, and ``default: null``.
:func:`structural` rewrites it; :func:`render` adds what only a CRD has (versions, the status
subresource, printer columns, short names, selectable fields). The output is deterministic, and a
test fails when ``crds/`` differs from it.
"""

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from nodekeeper.api import GROUP, VERSION, backuprun, workload
from nodekeeper.api.backuprun import BackupRunSpec, BackupRunStatus
from nodekeeper.api.workload import WorkloadSpec, WorkloadStatus

JsonSchema = dict[str, Any]


def structural(model: type[BaseModel], *, keep_defaults: bool) -> JsonSchema:
    """The model's JSON schema, rewritten into a structural OpenAPI v3 schema."""
    raw = model.model_json_schema(by_alias=True)
    definitions: dict[str, JsonSchema] = raw.pop("$defs", {})
    return _rewrite(raw, definitions, keep_defaults=keep_defaults)


def _rewrite(
    node: JsonSchema, definitions: dict[str, JsonSchema], *, keep_defaults: bool
) -> JsonSchema:
    node = copy.deepcopy(node)
    if "$ref" in node:
        name = node.pop("$ref").rsplit("/", 1)[-1]
        merged = {**definitions[name], **node}  # a field's own description wins over its class's
        return _rewrite(merged, definitions, keep_defaults=keep_defaults)

    any_of = node.get("anyOf")
    if any_of is not None and not node.get("x-kubernetes-int-or-string"):
        # Optional[X] is written anyOf: [X, null]; optionality is `required` in OpenAPI.
        options = [option for option in any_of if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"a union other than Optional cannot be structural: {any_of}")
        del node["anyOf"]
        node = {**_rewrite(options[0], definitions, keep_defaults=keep_defaults), **node}

    node.pop("title", None)
    node.pop("additionalProperties", None) if node.get("additionalProperties") is False else None
    if "default" in node and (node["default"] is None or not keep_defaults):
        del node["default"]

    if "properties" in node:
        node["properties"] = {
            name: _rewrite(child, definitions, keep_defaults=keep_defaults)
            for name, child in node["properties"].items()
        }
        node.setdefault("type", "object")
    if "items" in node:
        node["items"] = _rewrite(node["items"], definitions, keep_defaults=keep_defaults)
    if "description" in node:
        node["description"] = " ".join(node["description"].split())
    return _ordered(node)


# Keys in the order a reader of the YAML wants them.
_KEY_ORDER = ("description", "type", "format", "enum", "default", "minimum", "maximum")


def _ordered(node: JsonSchema) -> JsonSchema:
    head = {key: node[key] for key in _KEY_ORDER if key in node}
    tail = {key: node[key] for key in sorted(node) if key not in head}
    return {**head, **tail}


def _crd(
    *,
    kind: str,
    plural: str,
    singular: str,
    short_names: tuple[str, ...],
    spec: type[BaseModel],
    status: type[BaseModel],
    printer_columns: tuple[dict[str, Any], ...],
    description: str,
) -> dict[str, Any]:
    schema = {
        "description": description,
        "type": "object",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural(spec, keep_defaults=True),
            "status": structural(status, keep_defaults=False),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": singular,
                "shortNames": list(short_names),
                "categories": ["nodekeeper"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(printer_columns),
                    # The agent watches with fieldSelector=spec.nodeName=<node> (GA in 1.32).
                    "selectableFields": [{"jsonPath": ".spec.nodeName"}],
                }
            ],
        },
    }


def definitions() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind."""
    return {
        "workloads.yaml": _crd(
            kind=workload.KIND,
            plural=workload.PLURAL,
            singular=workload.SINGULAR,
            short_names=workload.SHORT_NAMES,
            spec=WorkloadSpec,
            status=WorkloadStatus,
            printer_columns=workload.PRINTER_COLUMNS,
            description="A container that the nodekeeper agent of spec.nodeName runs and keeps "
            "running on its node's Docker engine.",
        ),
        "backupruns.yaml": _crd(
            kind=backuprun.KIND,
            plural=backuprun.PLURAL,
            singular=backuprun.SINGULAR,
            short_names=backuprun.SHORT_NAMES,
            spec=BackupRunSpec,
            status=BackupRunStatus,
            printer_columns=backuprun.PRINTER_COLUMNS,
            description="One backup, check or prune task: executed by the nodekeeper agent of "
            "spec.nodeName, or executed elsewhere and recorded by it.",
        ),
    }


HEADER = "# Generated by `nodekeeper crds` from operator/nodekeeper/api/. Do not edit.\n"


def render(crd: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(crd, sort_keys=False, width=100, allow_unicode=True)


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, crd in definitions().items():
        path = out / name
        path.write_text(render(crd))
        written.append(path)
    return written
