"""What the agents did, as the API server saw it, against what the chart grants.

After the suite, the kube-apiserver's audit log (e2e/cluster.sh turns it on) holds every
request the session's agent identity made: verb, group, resource, subresource, namespace and
the answer. From it:

- a refused request (401/403) fails the suite: the chart lacks a rule the code needs, or the
  own-node policy refused a write the agent meant to make;
- every request must be granted by the chart's rules (a second reading of the same answer, and
  it names the missing rule);
- every rule the chart grants must have been used, or be listed in ``NOT_REQUESTS`` with the
  reason no request shows it: least privilege from what the agent did.

The agents' own logs are read too (what a cluster without an audit log, such as kind, gives):
a line that says the API server refused something fails the suite as well.
"""

import base64
import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import yaml


@dataclass(frozen=True, order=True)
class Access:
    """One kind of request: ``resource`` is ``name`` or ``name/subresource``, as RBAC says."""

    verb: str
    group: str
    resource: str

    @property
    def non_resource(self) -> bool:
        """A URL such as /version, which RBAC grants apart (every user may read /version)."""
        return self.resource.startswith("/")

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}" + (f".{self.group}" if self.group else "")


# Rules no request of the agent's shows, because the API server checks them inside another
# request; each is proven by that other request succeeding.
NOT_REQUESTS = {
    Access("create", "", "configmaps"): (
        "a server-side apply of a log chunk that does not exist yet is a patch request, which "
        "the API server also authorizes as create"
    ),
    Access("update", "nodekeeper.io", "backupruns/finalizers"): (
        "OwnerReferencesPermissionEnforcement checks it when a log ConfigMap is written with "
        "blockOwnerDeletion on its BackupRun"
    ),
}

# How a refusal reads in the agent's log: the API server's Status message ("... is forbidden:
# User ... cannot patch ...", or the own-node policy's "... denied request"), or the reason.
REFUSED_LINE = re.compile(r"forbidden|unauthorized", re.I)


@dataclass(frozen=True)
class Request:
    access: Access
    namespace: str
    name: str
    code: int
    user_agent: str
    uri: str


def audit_requests(log: Path, username: str) -> list[Request]:
    """The user's requests in the audit log (and its rotated sibling), one per audit ID."""
    last: dict[str, dict[str, Any]] = {}
    files = [*sorted(log.parent.glob(f"{log.stem}-*{log.suffix}")), log]
    needle = json.dumps(username)
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if needle not in line:
                    continue
                event = json.loads(line)
                if event.get("user", {}).get("username") == username:
                    last[event["auditID"]] = event  # ResponseComplete after ResponseStarted
    found = []
    for event in last.values():
        ref = event.get("objectRef") or {}
        resource = ref.get("resource") or event.get("requestURI", "").split("?")[0]
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        found.append(
            Request(
                access=Access(event["verb"], ref.get("apiGroup", ""), resource),
                namespace=ref.get("namespace", ""),
                name=ref.get("name", ""),
                code=int(event.get("responseStatus", {}).get("code", 0)),
                user_agent=event.get("userAgent", ""),
                uri=event.get("requestURI", ""),
            )
        )
    return found


def mark_and_wait(log: Path, kubeconfig: str, folder: Path, seconds: float = 20) -> None:
    """One request of the agent's own, then wait until the audit log holds it: every request
    before it is written then too. ``/version`` is readable by any authenticated user."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    token = config["users"][0]["user"]["token"]
    marker = f"nodekeeper-e2e-audit-marker={time.monotonic_ns()}"
    ca = folder / "audit-marker-ca.crt"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    response = requests.get(
        f"{cluster['server']}/version?{marker}",
        headers={"Authorization": f"Bearer {token}"},
        verify=str(ca),
        timeout=10,
    )
    response.raise_for_status()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and marker in log.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"the audit log {log} never showed the marker request {marker}: is the cluster one that"
        " this checkout's e2e/cluster.sh started (it restarts one without the audit flags)?"
    )


@dataclass(frozen=True)
class Grant:
    access: Access
    namespace: str  # "" for every namespace (a ClusterRole bound cluster-wide)


def grants(documents: Iterable[dict[str, Any]], namespace: str, account: str) -> list[Grant]:
    """Every (verb, group, resource) the rendered chart grants the ServiceAccount, where."""
    documents = list(documents)
    roles = {
        (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d
        for d in documents
        if d["kind"] in ("ClusterRole", "Role")
    }
    found = []
    for binding in documents:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subjects = binding.get("subjects", [])
        if not any(
            s["kind"] == "ServiceAccount"
            and s["name"] == account
            and s.get("namespace") == namespace
            for s in subjects
        ):
            continue
        where = binding["metadata"].get("namespace", "")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], where if ref["kind"] == "Role" else "", ref["name"])]
        for rule in role.get("rules", []):
            assert "resourceNames" not in rule, "resourceNames: not handled here"
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    for verb in rule.get("verbs", []):
                        found.append(Grant(Access(verb, group, resource), where))
    return found


def granted(request: Request, rules: list[Grant]) -> bool:
    return any(
        rule.access == request.access and rule.namespace in ("", request.namespace)
        for rule in rules
    )


def refused_lines(logs: Iterable[Path]) -> Iterator[str]:
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if REFUSED_LINE.search(line):
                yield f"{log}: {line[:400]}"


def describe(requests_: Iterable[Request]) -> list[str]:
    return sorted(
        {
            f"{r.access} (-> {r.code}) in {r.namespace or 'cluster'}: {r.uri[:160]}"
            for r in requests_
        }
    )
