"""The agent never collects its own pod's logs (it would feed itself its own output)."""

import pytest

from nodekeeper.app.build import own_exclusions
from nodekeeper.config import load
from nodekeeper.logs.records import ContainerInfo
from nodekeeper.logs.rules import LogRules


def container(pod: str) -> ContainerInfo:
    return ContainerInfo(
        "b" * 64, "k8s_agent", "nodekeeper", {"io.kubernetes.pod.name": pod}, "json-file", "x"
    )


def test_the_agents_pod_is_excluded_next_to_the_users_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "nodekeeper-abcde")
    settings = load({"log_exclude": ["name=noisy"]})
    rules = LogRules(settings.log_include, own_exclusions(settings))
    assert not rules.follows(container("nodekeeper-abcde"))
    assert rules.follows(container("web-12345"))
    assert own_exclusions(settings)[0] == "name=noisy"
