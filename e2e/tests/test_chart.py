"""The chart on a real API server: install, RBAC as the agent sees it, upgrade, uninstall.

There is no kubelet here, so no pod runs (no `--wait`, no `helm test`: see README for kind);
what is proven is that the API server accepts every object, including the Prometheus Operator's
ServiceMonitor and PrometheusRule against their real CRDs, and that the agent's service account
may do exactly what the code does. Names are unique per run: other suites share the cluster.
"""

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import kubernetes.client
import pytest
import yaml

from e2e.tests.conftest import CACHE, ROOT, Kubectl
from nodekeeper.kube import client

CHART = ROOT / "charts" / "nodekeeper"
pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    secret_namespace: str
    other_namespace: str

    @property
    def fullname(self) -> str:
        return f"{self.name}-nodekeeper"

    @property
    def account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"


class Helm:
    def __init__(self, kubeconfig: str) -> None:
        self.binary = str(CACHE / "bin" / "helm")
        self.kubeconfig = kubeconfig

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
            env={**os.environ, "HELM_CACHE_HOME": str(CACHE / "helm")},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed: {result.stderr.strip()}")
        return result


@pytest.fixture(scope="module")
def helm(kubeconfig: str) -> Helm:
    subprocess.run([str(ROOT / "e2e" / "build.sh")], capture_output=True, check=True)
    return Helm(kubeconfig)


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Kubectl) -> None:
    """The Prometheus Operator's CRDs, from its Go module (e2e/prometheus-operator-crds.sh)."""
    folder = subprocess.run(
        [str(ROOT / "e2e" / "prometheus-operator-crds.sh")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # Server-side: these CRDs are too large for client-side apply's annotation. Other suites may
    # apply the same files; conflicts are forced, the content is the same.
    for name in ("servicemonitors", "prometheusrules"):
        path = Path(folder) / f"monitoring.coreos.com_{name}.yaml"
        kubectl.run("apply", "--server-side", "--force-conflicts", "-f", str(path))
        kubectl.run(
            "wait",
            "--for=condition=Established",
            f"crd/{name}.monitoring.coreos.com",
            "--timeout=60s",
        )


@pytest.fixture(scope="module")
def release(kubectl: Kubectl, helm: Helm, crds: None, monitoring_crds: None) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    made = Release(
        name=f"nk{suffix}",
        namespace=f"e2e-chart-{suffix}",
        secret_namespace=f"e2e-chart-secrets-{suffix}",
        other_namespace=f"e2e-chart-other-{suffix}",
    )
    for namespace in (made.namespace, made.secret_namespace, made.other_namespace):
        kubectl.run("create", "namespace", namespace)
    try:
        helm.run(
            *("install", made.name, str(CHART), "--namespace", made.namespace),
            *("--set", f"backupRuns.secretNamespaces={{{made.secret_namespace}}}"),
            *("--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true"),
            *("--set", "dashboards.enabled=true"),
            *("--set", "serviceMonitor.additionalLabels.release=kube-prometheus-stack"),
        )
        yield made
    finally:
        helm.run("uninstall", made.name, "--namespace", made.namespace, check=False)
        for namespace in (made.namespace, made.secret_namespace, made.other_namespace):
            kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)


def manifest(helm: Helm, release: Release) -> list[dict[str, object]]:
    text = helm.run("get", "manifest", release.name, "--namespace", release.namespace).stdout
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_every_object_is_accepted(kubectl: Kubectl, helm: Helm, release: Release) -> None:
    documents = manifest(helm, release)
    kinds = {str(doc["kind"]) for doc in documents}
    assert {
        "DaemonSet",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds
    for doc in documents:
        metadata = doc["metadata"]
        assert isinstance(metadata, dict)
        namespace = metadata.get("namespace")
        where = ("--namespace", str(namespace)) if namespace else ()
        kubectl.run("get", f"{doc['kind']}.{_group(doc)}", str(metadata["name"]), *where)
    status = json.loads(
        helm.run("status", release.name, "--namespace", release.namespace, "-o", "json").stdout
    )
    assert status["info"]["status"] == "deployed"


def _group(doc: dict[str, object]) -> str:
    api_version = str(doc["apiVersion"])
    return api_version.split("/")[0] if "/" in api_version else ""


def can(kubectl: Kubectl, release: Release, verb: str, resource: str, *flags: str) -> bool:
    result = kubectl.run(
        "auth", "can-i", verb, resource, "--as", release.account, *flags, check=False
    )
    answer = result.stdout.strip()
    assert answer in ("yes", "no"), result.stderr
    return answer == "yes"


# What the agent's code calls (kube/*.py, kopf's watching, patching and posting).
NEEDED = [
    ("list", "workloads.nodekeeper.io", "-A"),
    ("watch", "workloads.nodekeeper.io", "-A"),
    ("patch", "workloads.nodekeeper.io", "-n", "{other}"),
    ("delete", "workloads.nodekeeper.io", "-n", "{other}"),
    ("patch", "workloads.nodekeeper.io", "--subresource=status", "-n", "{other}"),
    ("list", "backupruns.nodekeeper.io", "-A"),
    ("watch", "backupruns.nodekeeper.io", "-A"),
    ("patch", "backupruns.nodekeeper.io", "-n", "{other}"),
    ("delete", "backupruns.nodekeeper.io", "-n", "{other}"),
    ("patch", "backupruns.nodekeeper.io", "--subresource=status", "-n", "{other}"),
    ("update", "backupruns.nodekeeper.io", "--subresource=finalizers", "-n", "{other}"),
    ("list", "configmaps", "-n", "{other}"),
    ("create", "configmaps", "-n", "{other}"),
    ("patch", "configmaps", "-n", "{other}"),
    ("delete", "configmaps", "-n", "{other}"),
    ("get", "nodes", "--subresource=status"),
    ("patch", "nodes", "--subresource=status"),
    ("create", "events", "-n", "default"),
    ("create", "events", "-n", "{other}"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "tokenreviews.authentication.k8s.io"),
    ("create", "subjectaccessreviews.authorization.k8s.io"),
    ("get", "secrets", "-n", "{secrets}"),
    # BackupRuns may live in any namespace, and their log ConfigMaps with them: kube-system too.
    ("patch", "configmaps", "-n", "kube-system"),
]

DENIED = [
    ("get", "secrets", "-n", "{other}"),
    ("get", "secrets", "-n", "{release}"),
    ("get", "secrets", "-n", "kube-system"),
    ("list", "secrets", "-n", "{secrets}"),
    ("list", "secrets", "-A"),
    ("create", "pods", "--subresource=exec", "-n", "{other}"),
    ("create", "pods", "-n", "{other}"),
    ("delete", "pods", "-n", "{other}"),
    ("get", "pods", "--subresource=log", "-n", "{other}"),
    ("get", "nodes"),
    ("patch", "nodes"),
    ("update", "nodes"),
    ("delete", "nodes"),
    ("get", "nodes", "--subresource=proxy"),
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io"),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "workloads.nodekeeper.io", "-n", "{other}"),
    ("update", "workloads.nodekeeper.io", "-n", "{other}"),
    ("create", "backupruns.nodekeeper.io", "-n", "{other}"),
    ("get", "configmaps", "-n", "{other}"),
    ("create", "events.events.k8s.io", "-n", "{other}"),
    ("delete", "events", "-n", "{other}"),
    ("create", "serviceaccounts", "--subresource=token", "-n", "{release}"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("bind", "clusterroles.rbac.authorization.k8s.io"),
    ("escalate", "clusterroles.rbac.authorization.k8s.io"),
    ("patch", "daemonsets.apps", "-n", "{release}"),
    ("get", "nodes.nodekeeper.io", "--subresource=logs"),
]


def _expand(release: Release, args: tuple[str, ...]) -> tuple[str, ...]:
    names = {
        "other": release.other_namespace,
        "secrets": release.secret_namespace,
        "release": release.namespace,
    }
    return tuple(arg.format(**names) for arg in args)


def test_the_agent_may_do_what_its_code_does(kubectl: Kubectl, release: Release) -> None:
    refused = [
        " ".join(_expand(release, check))
        for check in NEEDED
        if not can(kubectl, release, *_expand(release, check))
    ]
    assert refused == []


def test_the_agent_may_do_nothing_else(kubectl: Kubectl, release: Release) -> None:
    allowed = [
        " ".join(_expand(release, check))
        for check in DENIED
        if can(kubectl, release, *_expand(release, check))
    ]
    assert allowed == []


def agent_kubeconfig(
    kubectl: Kubectl, release: Release, folder: Path, *, bound_pod: str | None = None
) -> str:
    """A kubeconfig with the agent's own service-account token (what its pod would use); with
    ``bound_pod``, bound to that pod as the kubelet's tokens are, so it names the pod's node."""
    bound = ("--bound-object-kind", "Pod", "--bound-object-name", bound_pod) if bound_pod else ()
    token = kubectl.run(
        "create", "token", release.fullname, "--namespace", release.namespace, *bound
    ).stdout.strip()
    admin = yaml.safe_load(Path(kubectl.kubeconfig).read_text())
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": admin["clusters"],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [
            {"name": "agent", "context": {"cluster": admin["clusters"][0]["name"], "user": "agent"}}
        ],
        "current-context": "agent",
    }
    path = folder / f"agent-{bound_pod or 'unbound'}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_agents_token_writes_log_chunks_as_the_code_does(
    kubectl: Kubectl, release: Release, tmp_path: Path
) -> None:
    """Real calls, not can-i: server-side apply of a chunk that does not exist yet needs
    `create` besides `patch` (the API server authorizes the implied create), which is why the
    ClusterRole has both; then list and delete, as backups.runlogs does."""
    agent = Kubectl(agent_kubeconfig(kubectl, release, tmp_path))
    chunk = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "run-log-000", "namespace": release.other_namespace},
        "binaryData": {"chunk": "AAEC"},
    }
    for _ in range(2):  # create, then the same apply again (an agent restarted half-way)
        agent.run(
            *("apply", "--server-side", "--force-conflicts", "--field-manager=nodekeeper-logs"),
            *("-f", "-"),
            input=json.dumps(chunk),
        )
    listed = agent.get("configmaps", "--namespace", release.other_namespace)
    assert "run-log-000" in {item["metadata"]["name"] for item in listed["items"]}
    agent.run("delete", "configmap", "run-log-000", "--namespace", release.other_namespace)


def test_the_agents_token_reads_secrets_only_in_listed_namespaces(
    kubectl: Kubectl, release: Release, tmp_path: Path
) -> None:
    for namespace in (release.secret_namespace, release.other_namespace):
        kubectl.run(
            "create", "secret", "generic", "restic", "--from-literal=password=x", "-n", namespace
        )
    agent = Kubectl(agent_kubeconfig(kubectl, release, tmp_path))
    agent.run("get", "secret", "restic", "--namespace", release.secret_namespace)
    refused = agent.run(
        "get", "secret", "restic", "--namespace", release.other_namespace, check=False
    )
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower()


def condition_patch(kind: str) -> str:
    condition = {"type": kind, "status": "False", "reason": "Probe", "message": "e2e"}
    return json.dumps({"status": {"conditions": [condition]}})


def test_the_agent_may_change_only_its_own_nodes_objects(
    kubectl: Kubectl, release: Release, node: str, tmp_path: Path
) -> None:
    """RBAC grants every Node's status and every node's Workloads; the chart's admission policy
    narrows that to the node in the agent pod's token, on the real API server."""
    other = f"e2e-other-{release.name}"
    pod = f"agent-{release.name}"
    kubectl.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": other}})
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": release.namespace},
            "spec": {
                "nodeName": node,  # as the DaemonSet's pod on this node (no kubelet runs it)
                "serviceAccountName": release.fullname,
                "containers": [{"name": "agent", "image": "nodekeeper:dev"}],
            },
        }
    )
    theirs = {
        "apiVersion": "nodekeeper.io/v1alpha1",
        "kind": "Workload",
        "metadata": {"name": "theirs", "namespace": release.other_namespace},
        "spec": {"nodeName": other, "image": "nodekeeper-test/busybox:latest"},
    }
    kubectl.apply(theirs)
    probe = "NodekeeperPolicyProbe"
    try:
        agent = Kubectl(agent_kubeconfig(kubectl, release, tmp_path, bound_pod=pod))
        patch = ("--subresource=status", "--type=strategic", "-p", condition_patch(probe))
        agent.run("patch", "node", node, *patch)  # its own: allowed

        refused = agent.run("patch", "node", other, *patch, check=False)
        assert refused.returncode != 0
        assert f"the nodekeeper agent of node {node} may not change nodes {other}" in (
            refused.stderr
        )
        # The agent's own calls (no kubectl: it would GET first, which the agent may not).
        objects = kubernetes.client.CustomObjectsApi(
            client.api_client(client.load(Path(agent.kubeconfig)))
        )
        where = ("nodekeeper.io", "v1alpha1", release.other_namespace, "workloads", "theirs")
        with pytest.raises(kubernetes.client.ApiException) as refused_patch:
            objects.patch_namespaced_custom_object(*where, {"metadata": {"labels": {"probe": "1"}}})
        assert refused_patch.value.status == 403
        assert f"may not change workloads theirs of node {other}" in str(refused_patch.value.body)
        with pytest.raises(kubernetes.client.ApiException) as refused_delete:
            objects.delete_namespaced_custom_object(*where)
        assert refused_delete.value.status == 403
        assert "may not change workloads theirs" in str(refused_delete.value.body)

        unbound = Kubectl(agent_kubeconfig(kubectl, release, tmp_path))
        refused = unbound.run("patch", "node", node, *patch, check=False)
        assert refused.returncode != 0
        assert "the nodekeeper agent's token names no node" in refused.stderr
    finally:
        kubectl.run(
            *("patch", "node", node, "--subresource=status", "--type=strategic", "-p"),
            json.dumps({"status": {"conditions": [{"type": probe, "$patch": "delete"}]}}),
            check=False,
        )
        kubectl.run("delete", "workload", "theirs", "-n", release.other_namespace, check=False)
        kubectl.run("delete", "pod", pod, "-n", release.namespace, "--wait=false", check=False)
        kubectl.run("delete", "node", other, check=False)


def test_the_agent_may_change_its_own_nodes_objects_as_its_code_does(
    kubectl: Kubectl, release: Release, tmp_path: Path
) -> None:
    """The policy's allowed side, with a pod-bound token of the objects' node: status applies,
    finalizer patches and deletes of its own Workload and BackupRun go through, as kopf and the
    status writers send them. A node of its own: no agent of the session acts on these."""
    own = f"e2e-own-{release.name}"
    pod = f"agent-own-{release.name}"
    kubectl.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": own}})
    kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": pod, "namespace": release.namespace},
            "spec": {
                "nodeName": own,
                "serviceAccountName": release.fullname,
                "containers": [{"name": "agent", "image": "nodekeeper:dev"}],
            },
        }
    )
    namespace = release.other_namespace
    kinds = {
        "workloads": {"kind": "Workload", "spec": {"image": "nodekeeper-test/busybox:latest"}},
        "backupruns": {
            "kind": "BackupRun",
            "spec": {"policy": "own", "taskType": "backup", "image": "x", "command": ["true"]},
        },
    }
    try:
        for shape in kinds.values():
            kubectl.apply(
                {
                    "apiVersion": "nodekeeper.io/v1alpha1",
                    "kind": shape["kind"],
                    "metadata": {"name": "ours", "namespace": namespace},
                    "spec": {"nodeName": own, **shape["spec"]},
                }
            )
        kubeconfig = agent_kubeconfig(kubectl, release, tmp_path, bound_pod=pod)
        objects = kubernetes.client.CustomObjectsApi(
            client.api_client(client.load(Path(kubeconfig)))
        )
        for plural, shape in kinds.items():
            where = ("nodekeeper.io", "v1alpha1", namespace, plural, "ours")
            status = {
                "apiVersion": "nodekeeper.io/v1alpha1",
                "kind": shape["kind"],
                "metadata": {"name": "ours", "namespace": namespace},
                "status": {"phase": "Pending"},
            }
            objects.patch_namespaced_custom_object_status(
                *where,
                status,
                field_manager="nodekeeper-e2e",
                force=True,
                _content_type=client.APPLY_PATCH,
            )
            finalizer = {"metadata": {"finalizers": ["nodekeeper.io/finalizer"]}}
            objects.patch_namespaced_custom_object(*where, finalizer)
            objects.delete_namespaced_custom_object(*where)  # held by the finalizer
            objects.patch_namespaced_custom_object(*where, {"metadata": {"finalizers": None}})
            gone = kubectl.run("get", plural, "ours", "-n", namespace, check=False)
            assert "NotFound" in gone.stderr, f"{plural}/ours is still there"
    finally:
        for plural in kinds:
            kubectl.run(
                *("patch", plural, "ours", "-n", namespace, "--type=merge"),
                *("-p", '{"metadata": {"finalizers": null}}'),
                check=False,
            )
            kubectl.run("delete", plural, "ours", "-n", namespace, "--wait=false", check=False)
        kubectl.run(
            *("delete", "pod", pod, "-n", release.namespace, "--grace-period=0", "--force"),
            check=False,
        )
        kubectl.run("delete", "node", own, check=False)


def test_upgrade_applies_new_values(kubectl: Kubectl, helm: Helm, release: Release) -> None:
    helm.run(
        *("upgrade", release.name, str(CHART), "--namespace", release.namespace),
        "--reuse-values",
        *("--set", "settings.log_level=debug", "--set", "workloads.enabled=false"),
        *("--set", "backupRuns.enabled=false"),
    )
    daemonset = kubectl.get("daemonset", release.fullname, "--namespace", release.namespace)
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    variables = {item["name"]: item.get("value") for item in container["env"]}
    assert variables["NODEKEEPER_LOG_LEVEL"] == "debug"
    assert "NODEKEEPER_DOCKER_HOST" not in variables
    volumes = daemonset["spec"]["template"]["spec"]["volumes"]
    assert "docker-socket" not in {volume["name"] for volume in volumes}
    # BackupRuns off: no Role for Secrets is left behind.
    roles = kubectl.get("roles", "--namespace", release.secret_namespace)["items"]
    assert roles == []
    status = json.loads(
        helm.run("status", release.name, "--namespace", release.namespace, "-o", "json").stdout
    )
    assert status["version"] == 2


def test_uninstall_leaves_only_the_crds(kubectl: Kubectl, helm: Helm, release: Release) -> None:
    helm.run("uninstall", release.name, "--namespace", release.namespace)
    selector = f"app.kubernetes.io/instance={release.name}"
    namespaced = (
        "daemonsets,services,serviceaccounts,configmaps,secrets,roles,rolebindings,"
        "servicemonitors.monitoring.coreos.com,prometheusrules.monitoring.coreos.com"
    )
    left = kubectl.get(namespaced, "-A", "-l", selector)["items"]
    cluster_scoped = (
        "clusterroles,clusterrolebindings,validatingadmissionpolicies,"
        "validatingadmissionpolicybindings"
    )
    left += kubectl.get(cluster_scoped, "-l", selector)["items"]
    assert [f"{item['kind']}/{item['metadata']['name']}" for item in left] == []
    releases = kubectl.get("secrets", "--namespace", release.namespace, "-l", "owner=helm")
    assert releases["items"] == []
    for crd in ("workloads.nodekeeper.io", "backupruns.nodekeeper.io"):
        kubectl.run("get", "crd", crd)
