"""Include/exclude rules decide which containers' logs are collected; the driver decides how."""

import pytest

from nodekeeper.logs.records import ContainerInfo
from nodekeeper.logs.rules import InvalidRule, LogRules, Rule

AGENT = "a0" * 32


def container(
    name: str = "web",
    image: str = "registry.local/shop/web:1.4",
    labels: dict[str, str] | None = None,
    driver: str = "json-file",
    container_id: str = "c1" * 32,
) -> ContainerInfo:
    return ContainerInfo(
        id=container_id,
        name=name,
        image=image,
        labels=labels or {},
        log_driver=driver,
        log_path=f"/var/lib/docker/containers/{container_id}/{container_id}-json.log",
    )


SHOP_POD = container(
    name="k8s_web_web-0_shop_1_0",
    labels={"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-0"},
)
WORKLOAD = container(
    name="nk-batch",
    image="busybox:latest",
    labels={"nodekeeper.io/namespace": "jobs", "nodekeeper.io/workload-uid": "u"},
)
PLAIN = container(name="db", image="postgres:16")


class TestSelection:
    def test_no_rules_follow_everything(self) -> None:
        rules = LogRules()
        assert all(rules.follows(c) for c in (SHOP_POD, WORKLOAD, PLAIN))

    @pytest.mark.parametrize(
        ("rule", "followed"),
        [
            ("name=db", {"db"}),
            ("name=k8s_*", {"k8s_web_web-0_shop_1_0"}),
            ("image=*busybox*", {"nk-batch"}),
            ("image=postgres:1?", {"db"}),
            ("namespace=shop", {"k8s_web_web-0_shop_1_0"}),
            ("namespace=jobs", {"nk-batch"}),  # a Workload's namespace label
            ("namespace=", {"db"}),  # containers outside any namespace
            ("label:io.kubernetes.pod.name=web-*", {"k8s_web_web-0_shop_1_0"}),
            ("label:nodekeeper.io/workload-uid=*", {"nk-batch"}),  # present, any value
            ("name=DB", set()),  # case-sensitive, like Docker's names
        ],
    )
    def test_include(self, rule: str, followed: set[str]) -> None:
        rules = LogRules(include=[rule])
        assert {c.name for c in (SHOP_POD, WORKLOAD, PLAIN) if rules.follows(c)} == followed

    def test_any_include_rule_suffices(self) -> None:
        rules = LogRules(include=["name=db", "namespace=shop"])
        assert {c.name for c in (SHOP_POD, WORKLOAD, PLAIN) if rules.follows(c)} == {
            "db",
            "k8s_web_web-0_shop_1_0",
        }

    def test_exclude_wins_over_include(self) -> None:
        rules = LogRules(include=["namespace=shop"], exclude=["label:io.kubernetes.pod.name=web-0"])
        assert not rules.follows(SHOP_POD)

    def test_exclude_alone_keeps_the_rest(self) -> None:
        rules = LogRules(exclude=["image=postgres:*"])
        assert [rules.follows(c) for c in (SHOP_POD, WORKLOAD, PLAIN)] == [True, True, False]

    def test_the_agents_own_container_is_excluded(self) -> None:
        agent = container(name="nodekeeper", container_id=AGENT)
        assert not LogRules(include=["name=nodekeeper"], own_id=AGENT).follows(agent)
        assert LogRules(own_id=AGENT).follows(PLAIN)

    def test_the_agents_own_container_on_request(self) -> None:
        agent = container(name="nodekeeper", container_id=AGENT)
        assert LogRules(own_id=AGENT, exclude_self=False).follows(agent)

    def test_outside_a_container_nothing_is_self(self) -> None:
        assert LogRules(own_id=None).follows(container(container_id=AGENT))


class TestInvalidRules:
    @pytest.mark.parametrize(
        "text", ["web", "name", "pod=web", "label:=x", "label=x", "Name=web", "", "=x"]
    )
    def test_are_refused_with_the_accepted_forms(self, text: str) -> None:
        with pytest.raises(ValueError, match=r"name=GLOB, image=GLOB, namespace=GLOB or label:"):
            LogRules(include=[text])
        with pytest.raises(InvalidRule):
            LogRules(exclude=[text])

    def test_the_message_is_one_line_that_names_the_rule(self) -> None:
        with pytest.raises(InvalidRule) as caught:
            LogRules(include=["name=ok", "pod=web"])
        assert "'pod=web'" in str(caught.value)
        assert "\n" not in str(caught.value)

    @pytest.mark.parametrize(
        "text", ["name=web", " image = x:* ", "namespace=", "label:app=a=b", "label:k=*"]
    )
    def test_valid_rules_read_back(self, text: str) -> None:
        rule = Rule.parse(text)
        assert Rule.parse(str(rule)) == rule

    def test_a_glob_may_contain_equals(self) -> None:
        rule = Rule.parse("label:app=a=b")
        assert (rule.key, rule.pattern) == ("app", "a=b")


class TestSource:
    @pytest.mark.parametrize(
        ("driver", "source"),
        [
            ("json-file", "file"),
            ("local", "api"),
            ("journald", "api"),
            ("none", "none"),
            ("syslog", "none"),
            ("fluentd", "none"),
            ("gelf", "none"),
            ("", "none"),
        ],
    )
    def test_by_driver(self, driver: str, source: str) -> None:
        assert LogRules().source(container(driver=driver)) == source

    def test_selection_does_not_depend_on_the_driver(self) -> None:
        # the pipeline counts followed containers it cannot read: follows() must say yes
        assert LogRules().follows(container(driver="syslog"))
