"""The agent's Node condition patch adds its conditions and leaves the kubelet's untouched."""

import datetime
from collections.abc import Iterator

import kubernetes.client
import pytest

from e2e.tests.conftest import Kubectl
from nodekeeper.kube import client
from nodekeeper.kube.nodes import NodeCondition, NodeConditionWriter
from tests.support.agent import AgentProcess
from tests.support.waiting import eventually_sync

T0 = datetime.datetime(2026, 5, 1, 10, 0, 0, tzinfo=datetime.UTC)
# A type of its own: the running agent owns the real Nodekeeper*Pressure conditions.
TYPE = "NodekeeperE2EProbe"
AGENTS_OWN = {"NodekeeperCPUPressure", "NodekeeperMemoryPressure", "NodekeeperIOPressure"}


@pytest.fixture
def api(kubeconfig: str) -> Iterator[kubernetes.client.ApiClient]:
    from pathlib import Path

    api = client.api_client(client.load(Path(kubeconfig)))
    yield api
    api.close()


def conditions(kubectl: Kubectl, node: str) -> dict[str, dict[str, str]]:
    return {c["type"]: c for c in kubectl.get("node", node)["status"]["conditions"]}


async def test_patching_our_condition_keeps_every_other_condition(
    kubectl: Kubectl, api: kubernetes.client.ApiClient, node: str
) -> None:
    before = conditions(kubectl, node)
    assert "Ready" in before, "the cluster's Node has no Ready condition to protect"
    writer = NodeConditionWriter(api, node_name=node)
    try:
        await writer.patch(
            [NodeCondition(TYPE, "False", "NoPressure", "cpu some avg10 0.01")], now=T0
        )
        after = conditions(kubectl, node)
        assert after[TYPE]["status"] == "False"
        assert after[TYPE]["lastTransitionTime"] == "2026-05-01T10:00:00Z"
        for other, condition in before.items():
            # The running agent's heartbeat may refresh its own conditions meanwhile.
            if other != TYPE and other not in AGENTS_OWN:
                assert after[other] == condition, f"{other} changed"

        later = T0 + datetime.timedelta(minutes=1)
        await writer.patch([NodeCondition(TYPE, "False", "NoPressure", "still fine")], now=later)
        same = conditions(kubectl, node)[TYPE]
        assert same["lastTransitionTime"] == "2026-05-01T10:00:00Z"
        assert same["lastHeartbeatTime"] == "2026-05-01T10:01:00Z"

        flipped_at = T0 + datetime.timedelta(minutes=2)
        await writer.patch(
            [NodeCondition(TYPE, "True", "CPUPressure", "avg10 0.9")], now=flipped_at
        )
        flipped = conditions(kubectl, node)
        assert flipped[TYPE]["lastTransitionTime"] == "2026-05-01T10:02:00Z"
        assert flipped["Ready"] == before["Ready"]
    finally:
        kubectl.run(
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=strategic",
            "-p",
            f'{{"status":{{"conditions":[{{"type":"{TYPE}","$patch":"delete"}}]}}}}',
            check=False,
        )


def test_the_running_agent_reports_its_three_conditions(
    kubectl: Kubectl, agent: AgentProcess, node: str
) -> None:
    def reported() -> dict[str, dict[str, str]] | None:
        found = conditions(kubectl, node)
        return found if set(found) >= AGENTS_OWN else None

    found = eventually_sync(reported, what="the agent's node conditions", seconds=30)

    # Each condition's first status was announced with an Event about the Node, as the kubelet's.
    def announced() -> set[str] | None:
        events = kubectl.get(
            "events",
            "-n",
            "default",
            "--field-selector",
            f"involvedObject.kind=Node,involvedObject.name={node},source=nodekeeper",
        )["items"]
        reasons = {event["reason"] for event in events}
        wanted = {found[kind]["reason"] for kind in AGENTS_OWN}
        return reasons if wanted <= reasons else None

    eventually_sync(announced, what="the agent's Events about its Node", seconds=30)
    assert found["Ready"]["status"] == "True"  # the "kubelet's" condition is still there
    memory = found["NodekeeperMemoryPressure"]
    assert memory["status"] in ("True", "False")
    assert "memory" in memory["message"]
    assert (
        agent.metric("nodekeeper_node_psi_ratio", {"resource": "cpu", "window": "avg10"})
        is not None
    )
    assert (
        agent.metric("nodekeeper_node_condition", {"condition": "NodekeeperIOPressure"}) is not None
    )
