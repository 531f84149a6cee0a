"""The agent's identity in e2e: the chart's ServiceAccount, RBAC and own-node policy, and a
pod-bound token per node, as the kubelet gives an agent pod of the DaemonSet.

Every agent the suite starts uses one of these kubeconfigs, never the admin's, so a call the
chart does not grant is refused by the real API server (and the suite fails on it, see
``rights.py``). The chart is rendered with helm and only its RBAC and admission-policy objects
are applied: there is no kubelet, so the DaemonSet would run nothing; the Pods that tokens are
bound to exist on the API server only, with ``spec.nodeName`` set as the scheduler would.
"""

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from e2e.tests.conftest import CACHE, ROOT, Kubectl

CHART = ROOT / "charts" / "nodekeeper"
# What of the chart is applied: who the agent is and what it may do.
IDENTITY_KINDS = {
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


def helm_template(release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(CACHE / "bin" / "helm"), "template", release, str(CHART), "--namespace", namespace]
        + [arg for value in values for arg in ("--set", value)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "HELM_CACHE_HOME": str(CACHE / "helm")},
    )
    if result.returncode != 0:
        raise AssertionError(f"helm template failed: {result.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


class AgentIdentity:
    """The chart's agent ServiceAccount in a namespace of its own, for this session."""

    def __init__(self, kubectl: Kubectl, folder: Path) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.kubectl = kubectl
        self.folder = folder
        self.release = f"nk-agents-{suffix}"
        self.namespace = f"e2e-agents-{suffix}"
        self.documents = helm_template(self.release, self.namespace)
        accounts = [d for d in self.documents if d["kind"] == "ServiceAccount"]
        assert len(accounts) == 1, "the chart renders one ServiceAccount"
        self.service_account = str(accounts[0]["metadata"]["name"])
        self.username = f"system:serviceaccount:{self.namespace}:{self.service_account}"
        self.secret_namespaces: list[str] = []
        self._kubeconfigs: dict[str, Path] = {}
        self._made_nodes: list[str] = []

    def install(self) -> None:
        self.kubectl.run("create", "namespace", self.namespace)
        self._apply([d for d in self.documents if d["kind"] in IDENTITY_KINDS])

    def grant_secrets(self, namespace: str) -> None:
        """The chart's Role for ``backupRuns.secretNamespaces={namespace}``, as a user would
        install it for a namespace whose BackupRuns reference Secrets."""
        documents = helm_template(
            self.release, self.namespace, f"backupRuns.secretNamespaces={{{namespace}}}"
        )
        self._apply([d for d in documents if d["kind"] in ("Role", "RoleBinding")])
        self.secret_namespaces.append(namespace)

    def granting_documents(self) -> list[dict[str, Any]]:
        """The RBAC objects applied for the agent, the per-namespace Secret Roles included."""
        documents = [d for d in self.documents if d["kind"] in IDENTITY_KINDS]
        for namespace in self.secret_namespaces:
            rendered = helm_template(
                self.release, self.namespace, f"backupRuns.secretNamespaces={{{namespace}}}"
            )
            documents += [d for d in rendered if d["kind"] in ("Role", "RoleBinding")]
        return documents

    def kubeconfig(self, node: str) -> str:
        """A kubeconfig whose token is bound to an agent Pod on ``node`` (made once per node);
        the Node is registered first when the cluster has none of that name."""
        if node in self._kubeconfigs:
            return str(self._kubeconfigs[node])
        exists = self.kubectl.run("get", "node", node, "--ignore-not-found", "-o", "name")
        if not exists.stdout.strip():
            self.kubectl.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
            self._made_nodes.append(node)
        pod = f"agent-{node}"[:63].rstrip("-")
        self.kubectl.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": pod, "namespace": self.namespace},
                "spec": {
                    "nodeName": node,  # as the DaemonSet's pod there (no kubelet runs it)
                    "serviceAccountName": self.service_account,
                    "containers": [{"name": "agent", "image": "nodekeeper:dev"}],
                },
            }
        )
        token = self.kubectl.run(
            *("create", "token", self.service_account, "--namespace", self.namespace),
            *("--bound-object-kind", "Pod", "--bound-object-name", pod, "--duration=3h"),
        ).stdout.strip()
        path = self.folder / f"agent-{node}.kubeconfig"
        path.write_text(yaml.safe_dump(token_kubeconfig(self.kubectl.kubeconfig, token)))
        path.chmod(0o600)
        self._kubeconfigs[node] = path
        return str(path)

    def nodes(self) -> list[str]:
        """The nodes agents got a token for."""
        return list(self._kubeconfigs)

    def remove(self) -> None:
        # Forced: a Pod bound to a node waits for its kubelet to confirm a graceful delete.
        self.kubectl.run(
            *("delete", "pods", "--all", "-n", self.namespace, "--grace-period=0", "--force"),
            check=False,
        )
        for node in self._made_nodes:
            self.kubectl.run("delete", "node", node, "--wait=false", check=False)
        self.kubectl.run(
            *("delete", "-f", "-", "--ignore-not-found", "--wait=false"),
            input=json.dumps(as_list(self.granting_documents())),
            check=False,
        )
        self.kubectl.run("delete", "namespace", self.namespace, "--wait=false", check=False)

    def _apply(self, documents: list[dict[str, Any]]) -> None:
        self.kubectl.run("apply", "-f", "-", input=json.dumps(as_list(documents)))


def as_list(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": documents}


def token_kubeconfig(admin_kubeconfig: str, token: str) -> dict[str, Any]:
    """The admin kubeconfig's cluster, with a bearer token as the only credential."""
    admin = yaml.safe_load(Path(admin_kubeconfig).read_text())
    cluster = admin["clusters"][0]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "agent", "user": {"token": token}}],
        "contexts": [{"name": "agent", "context": {"cluster": cluster["name"], "user": "agent"}}],
        "current-context": "agent",
    }
