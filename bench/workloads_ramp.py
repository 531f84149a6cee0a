"""Benchmark: 200 Workloads applied at once on this node.

Prints the time until all are Ready, the API requests the agent made per Workload during the
ramp (from the API server's own apiserver_request_total, minus the requests kubectl made), and
the status writes in a steady-state window while every container logs a line a second (the goal
is zero: log activity never reaches status).

    .venv/bin/python bench/workloads_ramp.py [--count 200] [--steady-seconds 30]

Needs the local control plane (e2e/cluster.sh up) and dockerd (scripts/docker-up.sh).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests.support
from tests.support.agent import AgentProcess

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("NODEKEEPER_CACHE", Path.home() / ".cache" / "nodekeeper"))
KUBECTL = str(CACHE / "bin" / "kubectl")
IMAGE = os.environ.get("NODEKEEPER_TEST_IMAGE", "nodekeeper-test/busybox:latest")
NAMESPACE = "bench-ramp"


def kubectl(*args: str, input: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [KUBECTL, *args], input=input, capture_output=True, text=True, check=False, timeout=600
    )
    if check and result.returncode != 0:
        raise SystemExit(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def requests_on_workloads() -> Counter[tuple[str, str]]:
    """(verb, subresource) -> count, for workloads, from the API server's metrics."""
    counts: Counter[tuple[str, str]] = Counter()
    pattern = re.compile(r"^apiserver_request_total\{(.*)\} (\S+)$")
    for line in kubectl("get", "--raw", "/metrics").splitlines():
        found = pattern.match(line)
        if not found or 'resource="workloads"' not in found[1]:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', found[1]))
        counts[(labels.get("verb", ""), labels.get("subresource", ""))] += int(float(found[2]))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--steady-seconds", type=float, default=30)
    args = parser.parse_args()

    subprocess.run([str(ROOT / "scripts" / "docker-up.sh")], check=True, capture_output=True)
    subprocess.run([str(ROOT / "e2e" / "cluster.sh"), "up"], check=True, capture_output=True)
    kubeconfig = subprocess.run(
        [str(ROOT / "e2e" / "cluster.sh"), "kubeconfig"], capture_output=True, text=True, check=True
    ).stdout.strip()
    os.environ["KUBECONFIG"] = kubeconfig
    kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    node = kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}")
    kubectl("create", "namespace", NAMESPACE, check=False)

    agent = AgentProcess.for_node(
        node,
        kubeconfig,
        CACHE / "bench-ramp-agent",  # kept: the next run resumes its log store, as a node does
        # The ramp itself is real CPU pressure on 2 cores; the default gate would hold new
        # Workloads back until it passes, as designed. Measured here: the agent, not the gate.
        *("--admission-cpu-ratio", "1", "--pressure-enter-ratio", "0.95"),
        *("--pressure-exit-ratio", "0.9"),
    )
    try:
        agent.start()
        items = [
            {
                "apiVersion": "nodekeeper.io/v1alpha1",
                "kind": "Workload",
                "metadata": {"name": f"ramp-{i:03d}", "namespace": NAMESPACE},
                "spec": {
                    "nodeName": node,
                    "image": IMAGE,
                    "command": ["/bin/sh", "-c"],
                    "args": ["while true; do echo tick; sleep 1; done"],
                    "resources": {"limits": {"memory": "16Mi"}},
                },
            }
            for i in range(args.count)
        ]
        before = requests_on_workloads()
        started = time.monotonic()
        kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )
        applied = time.monotonic()
        while True:
            listing = json.loads(kubectl("get", "workloads", "-n", NAMESPACE, "-o", "json"))
            ready = sum(
                1
                for item in listing["items"]
                for c in item.get("status", {}).get("conditions", [])
                if c["type"] == "Ready" and c["status"] == "True"
            )
            if ready == args.count:
                break
            if time.monotonic() - started > 300:
                raise SystemExit(f"only {ready} of {args.count} Ready after 300 s")
            time.sleep(0.5)
        all_ready = time.monotonic()
        after_ramp = requests_on_workloads()
        ramp = after_ramp - before
        # kubectl's own: one server-side apply per object and the listings above.
        kubectl_applies = ramp.get(("APPLY", ""), 0)
        agent_requests = sum(
            n
            for (verb, sub), n in ramp.items()
            if verb not in ("LIST", "GET") and (verb, sub) != ("APPLY", "")
        )
        status_writes = sum(n for (verb, sub), n in ramp.items() if sub == "status")

        time.sleep(args.steady_seconds)
        steady = requests_on_workloads() - after_ramp
        steady_writes = sum(
            n for (verb, sub), n in steady.items() if verb not in ("LIST", "GET", "WATCH")
        )

        print(f"workloads                      {args.count}")
        print(
            f"apply -> all Ready             {all_ready - started:.1f} s "
            f"(kubectl apply itself {applied - started:.1f} s)"
        )
        print(
            f"agent writes during the ramp   {agent_requests} "
            f"({agent_requests / args.count:.2f} per Workload; "
            f"status {status_writes / args.count:.2f})"
        )
        print(f"kubectl applies                {kubectl_applies}")
        print(
            f"writes in {args.steady_seconds:.0f} s of steady state  {steady_writes} "
            "(every container logging 1 line/s)"
        )
        print(f"ramp requests by (verb, subresource): {dict(ramp)}")
    finally:
        kubectl("delete", "namespace", NAMESPACE, "--timeout=300s", check=False)
        agent.stop()
        print(f"agent log: {agent.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
