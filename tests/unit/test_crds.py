"""The CRDs in crds/ are current, deterministic and structural, with every promised feature."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from nodekeeper.api import crds
from nodekeeper.cli import main

ROOT = Path(__file__).resolve().parents[2]


def walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, child in node.items():
            found.extend(walk(child, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found.extend(walk(child, f"{path}[{index}]"))
    return found


def schema_of(name: str) -> dict[str, Any]:
    crd = crds.definitions()[name]
    result: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return result


# Where the CRDs are installed from: `kubectl apply -f crds/`, and helm from the chart's copy.
CRD_FOLDERS = ["crds", "charts/nodekeeper/crds"]


def differences(folder: Path, generated: Path) -> list[str]:
    """What ``folder`` holds other than exactly the files the generator wrote to ``generated``:
    a stale file, a missing one, or one it does not write (kubectl and helm apply every
    manifest in the folder, so a CRD dropped from the models would still be installed)."""
    wanted = {path.name: path.read_text() for path in generated.iterdir()}
    held = {path.name: path.read_text() for path in folder.iterdir() if path.is_file()}
    problems = [f"{name} is missing" for name in sorted(wanted.keys() - held.keys())]
    problems += [
        f"{name} is not generated (delete it)" for name in sorted(held.keys() - wanted.keys())
    ]
    problems += [
        f"{name} is stale"
        for name in sorted(wanted)
        if held.get(name, wanted[name]) != wanted[name]
    ]
    return problems


@pytest.mark.parametrize("folder", CRD_FOLDERS)
def test_crd_folders_hold_what_the_generator_writes(folder: str, tmp_path: Path) -> None:
    assert main(["crds", "--out", str(tmp_path)]) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(crds.definitions())
    problems = differences(ROOT / folder, tmp_path)
    assert not problems, f"{folder}/: {'; '.join(problems)}: run `make crds` and commit"


def test_a_file_the_generator_does_not_write_is_caught(tmp_path: Path) -> None:
    generated, folder = tmp_path / "generated", tmp_path / "folder"
    crds.write(generated)
    crds.write(folder)
    (folder / "snapshots.yaml").write_text("kind: CustomResourceDefinition\n")
    (folder / "workloads.yaml").write_text("stale\n")
    (folder / "backupruns.yaml").unlink()

    assert differences(folder, generated) == [
        "backupruns.yaml is missing",
        "snapshots.yaml is not generated (delete it)",
        "workloads.yaml is stale",
    ]


def test_generation_is_deterministic() -> None:
    first = {name: crds.render(crd) for name, crd in crds.definitions().items()}
    second = {name: crds.render(crd) for name, crd in crds.definitions().items()}
    assert first == second


@pytest.mark.parametrize("name", ["workloads.yaml", "backupruns.yaml"])
def test_schemas_are_structural(name: str) -> None:
    for path, node in walk(schema_of(name)):
        assert "$ref" not in node, path
        assert "$defs" not in node, path
        assert "title" not in node or path.endswith(".properties"), path
        assert node.get("default", "x") is not None, path
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, path
            assert {"type": "null"} not in node["anyOf"], path
        if path.endswith(".properties") or path.endswith("properties"):
            continue
        if "properties" in node:
            assert node["type"] == "object", path


@pytest.mark.parametrize("name", ["workloads.yaml", "backupruns.yaml"])
def test_node_name_is_required_immutable_and_selectable(name: str) -> None:
    crd = crds.definitions()[name]
    version = crd["spec"]["versions"][0]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "nodeName" in spec["required"]
    rules = spec["properties"]["nodeName"]["x-kubernetes-validations"]
    assert rules[0]["rule"] == "self == oldSelf"
    assert version["selectableFields"] == [{"jsonPath": ".spec.nodeName"}]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("name", ["workloads.yaml", "backupruns.yaml"])
def test_conditions_are_a_map_keyed_by_type(name: str) -> None:
    conditions = schema_of(name)["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) >= {"type", "status", "reason"}


def test_quantities_are_int_or_string_with_a_pattern() -> None:
    limits = schema_of("workloads.yaml")["properties"]["spec"]["properties"]["resources"]
    memory = limits["properties"]["limits"]["properties"]["memory"]
    assert memory["x-kubernetes-int-or-string"] is True
    assert memory["pattern"].startswith("^(\\+|-)?")


def test_backuprun_needs_exactly_one_of_image_and_result() -> None:
    spec = schema_of("backupruns.yaml")["properties"]["spec"]
    assert spec["x-kubernetes-validations"][0]["rule"] == "has(self.image) != has(self.result)"
    assert spec["properties"]["result"]["properties"]["log"]["maxLength"] == 65536


def test_printer_columns_and_short_names() -> None:
    workloads = crds.definitions()["workloads.yaml"]["spec"]
    assert workloads["names"]["shortNames"] == ["wl"]
    columns = [c["name"] for c in workloads["versions"][0]["additionalPrinterColumns"]]
    assert columns[:4] == ["Node", "Image", "Phase", "Ready"]
    assert crds.definitions()["backupruns.yaml"]["spec"]["names"]["shortNames"] == ["br"]


def test_every_field_is_described_for_kubectl_explain() -> None:
    for name in crds.definitions():
        spec = schema_of(name)["properties"]["spec"]
        for path, node in walk(spec):
            if path.endswith("properties") or ("type" not in node and "anyOf" not in node):
                continue
            if path.endswith(".items") or "anyOf[" in path:
                continue
            assert node.get("description"), f"{name}{path} has no description"


def test_the_files_parse_as_yaml_crds() -> None:
    for name in crds.definitions():
        document = yaml.safe_load((ROOT / "crds" / name).read_text())
        assert document["kind"] == "CustomResourceDefinition"
        assert document["apiVersion"] == "apiextensions.k8s.io/v1"
