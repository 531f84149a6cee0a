"""What a user gets from the chart: the agent's pod, its RBAC, and the monitoring objects."""

import json
from pathlib import PurePosixPath
from typing import Any

import pytest
import yaml

from nodekeeper.config import Settings
from tests.chart.conftest import CHART, MONITORING_API, Render, find, kinds

PSI = PurePosixPath("/host/proc/pressure")


def agent_container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    pod = find(documents, "DaemonSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return dict(container)


def pod_spec(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(find(documents, "DaemonSet")["spec"]["template"]["spec"])


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def mounts(documents: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """mountPath -> (the mount, its hostPath volume)."""
    volumes = {volume["name"]: volume for volume in pod_spec(documents)["volumes"]}
    return {
        mount["mountPath"]: (mount, volumes[mount["name"]])
        for mount in agent_container(documents)["volumeMounts"]
    }


def covering_mount(documents: list[dict[str, Any]], path: PurePosixPath) -> dict[str, Any]:
    """The mount a path is on: the one with the longest mountPath that contains it."""
    candidates = [
        (len(PurePosixPath(where).parts), mount)
        for where, (mount, _) in mounts(documents).items()
        if path == PurePosixPath(where) or PurePosixPath(where) in path.parents
    ]
    return max(candidates, key=lambda pair: pair[0])[1]


def rules(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


class TestAgentPod:
    def test_node_and_pod_identity_come_from_the_downward_api(self, render: Render) -> None:
        variables = env(agent_container(render("default.yaml")))
        assert variables["NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
        assert variables["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        assert variables["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}

    def test_every_agent_variable_is_a_setting(self, render: Render) -> None:
        known = {f"NODEKEEPER_{name.upper()}" for name in Settings.model_fields}
        for values in ("default.yaml", "custom-settings.yaml"):
            names = set(env(agent_container(render(values))))
            assert {n for n in names if n.startswith("NODEKEEPER_")} <= known

    def test_host_folders_are_mounted_read_only(self, render: Render) -> None:
        found = mounts(render("default.yaml"))
        for path, host in [
            ("/var/lib/docker/containers", "/var/lib/docker/containers"),
            ("/host/sys/fs/cgroup", "/sys/fs/cgroup"),
            ("/etc/machine-id", "/etc/machine-id"),
            ("/host/proc", "/proc"),
        ]:
            mount, volume = found[path]
            assert mount["readOnly"] is True, path
            assert volume["hostPath"]["path"] == host

    def test_psi_files_are_writable_for_triggers(self, render: Render) -> None:
        documents = render("default.yaml")
        proc_root = env(agent_container(documents))["NODEKEEPER_PROC_ROOT"]
        assert PurePosixPath(proc_root) / "pressure" == PSI
        for name in ("cpu", "memory", "io"):
            mount = covering_mount(documents, PSI / name)
            assert not mount.get("readOnly", False), f"PSI file {name} is on a read-only mount"
        assert mounts(documents)[str(PSI)][1]["hostPath"]["path"] == "/proc/pressure"

    def test_docker_disk_is_measured_on_the_node_s_docker_filesystem(self, render: Render) -> None:
        documents = render("default.yaml")
        variables = env(agent_container(documents))
        assert variables["NODEKEEPER_DOCKER_ROOT"] == "/var/lib/docker/containers"
        assert variables["NODEKEEPER_LOG_CONTAINERS_DIR"] == "/var/lib/docker/containers"
        assert "/var/lib/docker/containers" in mounts(documents)

    def test_state_directory_is_a_host_folder_created_when_missing(self, render: Render) -> None:
        documents = render("default.yaml")
        mount, volume = mounts(documents)["/var/lib/nodekeeper"]
        assert not mount.get("readOnly", False)
        assert volume["hostPath"] == {"path": "/var/lib/nodekeeper", "type": "DirectoryOrCreate"}
        assert env(agent_container(documents))["NODEKEEPER_STATE_DIR"] == "/var/lib/nodekeeper"

    @pytest.mark.parametrize(
        ("flags", "mounted"),
        [
            ((), True),
            (("--set", "workloads.enabled=false"), True),
            (("--set", "backupRuns.enabled=false"), True),
            (("--set", "workloads.enabled=false", "--set", "backupRuns.enabled=false"), False),
        ],
    )
    def test_docker_socket_only_where_docker_is_used(
        self, render: Render, flags: tuple[str, ...], mounted: bool
    ) -> None:
        documents = render("default.yaml", flags=flags)
        found = mounts(documents)
        variables = env(agent_container(documents))
        if mounted:
            assert found["/var/run/docker.sock"][1]["hostPath"] == {
                "path": "/var/run/docker.sock",
                "type": "Socket",
            }
            assert variables["NODEKEEPER_DOCKER_HOST"] == "unix:///var/run/docker.sock"
        else:
            assert "/var/run/docker.sock" not in found
            assert "NODEKEEPER_DOCKER_HOST" not in variables
            assert not any("docker.sock" in json.dumps(doc) for doc in documents)

    def test_no_socket_with_the_workloads_disabled_values(self, render: Render) -> None:
        assert "/var/run/docker.sock" not in mounts(render("workloads-disabled.yaml"))

    def test_security_context_is_tight(self, render: Render) -> None:
        documents = render("default.yaml")
        context = agent_container(documents)["securityContext"]
        assert context["capabilities"] == {"drop": ["ALL"], "add": []}
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["privileged"] is False
        assert pod_spec(documents)["securityContext"]["seccompProfile"] == {
            "type": "RuntimeDefault"
        }
        assert not pod_spec(documents).get("hostNetwork")
        assert not pod_spec(documents).get("hostPID")

    def test_runs_on_every_node(self, render: Render) -> None:
        spec = pod_spec(render("default.yaml"))
        assert {"operator": "Exists"} in spec["tolerations"]
        assert spec["priorityClassName"] == "system-node-critical"

    def test_probes_and_port(self, render: Render) -> None:
        container = agent_container(render("default.yaml"))
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert env(container)["NODEKEEPER_HTTP_PORT"] == "8080"

    def test_memory_limit_reaches_the_agent(self, render: Render) -> None:
        container = agent_container(render("default.yaml"))
        assert container["resources"]["limits"] == {"memory": "512Mi"}
        assert env(container)["NODEKEEPER_MEMORY_LIMIT_BYTES"] == {
            "resourceFieldRef": {"containerName": "agent", "resource": "limits.memory"}
        }

    def test_image_and_default_tag(self, render: Render) -> None:
        assert agent_container(render("default.yaml"))["image"] == "nodekeeper:0.1.0"
        custom = agent_container(render("custom-settings.yaml"))
        assert custom["image"] == "registry.example/nodekeeper:0.1.0-rc1"
        assert custom["imagePullPolicy"] == "Always"


class TestSettings:
    def test_settings_become_variables_the_agent_accepts(self, render: Render) -> None:
        documents = render("custom-settings.yaml")
        variables = env(agent_container(documents))
        assert variables["NODEKEEPER_LOG_LEVEL"] == "debug"
        assert variables["NODEKEEPER_PRESSURE_ENTER_RATIO"] == "0.2"
        assert variables["NODEKEEPER_BACKUP_LOG_CAP_BYTES"] == "16777216"
        assert json.loads(variables["NODEKEEPER_IMAGE_POLICY"]) == {
            "team-a": ["registry.example/team-a/*"],
            "*": [],
        }
        assert variables["TZ"] == "UTC"
        # The agent reads them as the user meant them.
        given = {k: v for k, v in variables.items() if isinstance(v, str)}
        settings = Settings(
            **{
                k.removeprefix("NODEKEEPER_").lower(): v
                for k, v in given.items()
                if k.startswith("NODEKEEPER_")
            }
        )
        assert settings.pressure_enter_ratio == 0.2
        assert settings.backup_log_cap_bytes == 16 * 2**20
        assert settings.image_policy == {"team-a": ["registry.example/team-a/*"], "*": []}
        assert settings.gc_interval_seconds == 30

    def test_a_settings_change_rolls_the_agents(self, render: Render) -> None:
        def checksum(*files: str) -> str:
            template = find(render(*files), "DaemonSet")["spec"]["template"]
            return str(template["metadata"]["annotations"]["checksum/settings"])

        assert checksum("default.yaml") != checksum("custom-settings.yaml")


class TestRbac:
    def test_secrets_only_through_roles_in_listed_namespaces(self, render: Render) -> None:
        documents = render("custom-settings.yaml")
        roles = [doc for doc in documents if doc["kind"] == "Role"]
        assert {role["metadata"]["namespace"] for role in roles} == {"backups", "team-a"}
        for role in roles:
            assert rules(role) == {("", "secrets", "get")}
        bindings = [doc for doc in documents if doc["kind"] == "RoleBinding"]
        assert {b["metadata"]["namespace"] for b in bindings} == {"backups", "team-a"}
        for doc in documents:
            if doc["kind"] == "ClusterRole":
                assert not any(resource == "secrets" for _, resource, _ in rules(doc))

    def test_no_secret_roles_by_default(self, render: Render) -> None:
        assert "Role" not in kinds(render("default.yaml"))

    def test_cluster_role_is_least_privilege(self, render: Render) -> None:
        granted = rules(find(render("default.yaml"), "ClusterRole", "nodekeeper"))
        assert granted == {
            ("nodekeeper.io", "workloads", "list"),
            ("nodekeeper.io", "workloads", "watch"),
            ("nodekeeper.io", "workloads", "patch"),
            ("nodekeeper.io", "workloads", "delete"),
            ("nodekeeper.io", "backupruns", "list"),
            ("nodekeeper.io", "backupruns", "watch"),
            ("nodekeeper.io", "backupruns", "patch"),
            ("nodekeeper.io", "backupruns", "delete"),
            ("nodekeeper.io", "workloads/status", "patch"),
            ("nodekeeper.io", "backupruns/status", "patch"),
            ("nodekeeper.io", "backupruns/finalizers", "update"),
            ("", "configmaps", "list"),
            ("", "configmaps", "create"),
            ("", "configmaps", "patch"),
            ("", "configmaps", "delete"),
            ("", "nodes/status", "get"),
            ("", "nodes/status", "patch"),
            ("", "events", "create"),
            ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
            ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
            ("authentication.k8s.io", "tokenreviews", "create"),
            ("authorization.k8s.io", "subjectaccessreviews", "create"),
        }

    def test_log_reader_role_grants_only_node_logs(self, render: Render) -> None:
        role = find(render("default.yaml"), "ClusterRole", "nodekeeper-log-reader")
        assert rules(role) == {("nodekeeper.io", "nodes/logs", "get")}
        aggregated = find(
            render("default.yaml", flags=("--set", "rbac.logReaderAggregateTo={cluster-reader}")),
            "ClusterRole",
            "nodekeeper-log-reader",
        )
        labels = aggregated["metadata"]["labels"]
        assert labels["rbac.authorization.k8s.io/aggregate-to-cluster-reader"] == "true"

    def test_binding_names_the_agents_service_account(self, render: Render) -> None:
        documents = render("default.yaml")
        binding = find(documents, "ClusterRoleBinding")
        account = find(documents, "ServiceAccount")
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": "nodekeeper",
            }
        ]
        assert pod_spec(documents)["serviceAccountName"] == account["metadata"]["name"]


class TestMonitoring:
    def test_nothing_without_the_prometheus_operator_api(self, render: Render) -> None:
        documents = render("monitoring.yaml")
        assert "ServiceMonitor" not in kinds(documents)
        assert "PrometheusRule" not in kinds(documents)

    def test_off_by_default_even_with_the_api(self, render: Render) -> None:
        documents = render("default.yaml", api_versions=(MONITORING_API,))
        assert "ServiceMonitor" not in kinds(documents)
        assert "PrometheusRule" not in kinds(documents)

    def test_service_monitor_scrapes_the_metrics_service(self, render: Render) -> None:
        documents = render("monitoring.yaml", api_versions=(MONITORING_API,))
        monitor = find(documents, "ServiceMonitor")
        service = find(documents, "Service")
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["selector"]["matchLabels"].items() <= (
            service["metadata"]["labels"].items()
        )
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] == service["spec"]["ports"][0]["name"]
        assert endpoint["path"] == "/metrics"
        assert endpoint["interval"] == "15s"
        assert service["spec"]["ports"][0]["port"] == 8080

    def test_prometheus_rule_carries_the_rules_file(self, render: Render) -> None:
        rule = find(render("monitoring.yaml", api_versions=(MONITORING_API,)), "PrometheusRule")
        expected = yaml.safe_load((CHART / "rules" / "nodekeeper.rules.yaml").read_text())
        assert rule["spec"]["groups"] == expected["groups"]
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        alerts = {r.get("alert") for group in rule["spec"]["groups"] for r in group["rules"]}
        assert "NodekeeperAgentDown" in alerts

    def test_dashboards_for_the_grafana_sidecar(self, render: Render) -> None:
        files = sorted((CHART / "dashboards").glob("*.json"))
        assert files, "the chart ships no dashboards"
        documents = render("monitoring.yaml")
        maps = [doc for doc in documents if doc["kind"] == "ConfigMap"]
        assert len(maps) == len(files)
        by_name = sorted(maps, key=lambda m: m["metadata"]["name"])
        for config_map, path in zip(by_name, files, strict=True):
            assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
            assert config_map["metadata"]["annotations"] == {"grafana_folder": "Nodes"}
            assert json.loads(config_map["data"][path.name]) == json.loads(path.read_text())

    def test_dashboard_label_and_folder_are_configurable(self, render: Render) -> None:
        flags = (
            "--set",
            "dashboards.label=dash",
            "--set",
            "dashboards.labelValue=yes",
            "--set",
            "dashboards.folderAnnotation=folder",
        )
        maps = [d for d in render("monitoring.yaml", flags=flags) if d["kind"] == "ConfigMap"]
        assert maps
        for config_map in maps:
            assert config_map["metadata"]["labels"]["dash"] == "yes"
            assert "grafana_dashboard" not in config_map["metadata"]["labels"]
            assert config_map["metadata"]["annotations"] == {"folder": "Nodes"}


def test_helm_test_hook_fetches_healthz_through_the_service(render: Render) -> None:
    documents = render("default.yaml")
    pod = find(documents, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "http://nodekeeper.nodekeeper.svc:8080/healthz" in script


def test_the_own_node_policy_names_the_agents_account_and_can_be_turned_off(
    render: Render,
) -> None:
    documents = render("default.yaml")
    policy = find(documents, "ValidatingAdmissionPolicy")
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == (
        'request.userInfo.username == "system:serviceaccount:nodekeeper:nodekeeper"'
    )
    assert policy["spec"]["failurePolicy"] == "Fail"
    binding = find(documents, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]

    off = kinds(render("default.yaml", flags=("--set", "rbac.ownNodeOnly=false")))
    assert "ValidatingAdmissionPolicy" not in off
    assert "ValidatingAdmissionPolicyBinding" not in off
