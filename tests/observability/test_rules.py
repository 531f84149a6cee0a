"""The alert rules: valid for promtool, each alert unit-tested firing and not firing, and each
one telling the reader what to do (severity, summary, description, a runbook section that exists).

promtool is Debian's `prometheus` package (.ci/run installs it); without it these tests fail
and say so, they do not skip.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from observability.promql import ROOT, RULES

TESTS = Path(__file__).with_name("rules_test.yaml")
RUNBOOK = ROOT / "docs" / "alerts.md"
RUNBOOK_URL = "https://github.com/nodekeeper/nodekeeper/blob/main/docs/alerts.md#"
SEVERITIES = {"critical", "warning", "info"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("no promtool: apt-get install prometheus (.ci/run does it)")
    return found


def alerts() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_behaves_as_its_unit_tests_say(tmp_path: Path) -> None:
    # Annotations cut down to the summary: the tests state labels and the one-line summary,
    # not every description word for word (descriptions are checked below).
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    tests = yaml.safe_load(TESTS.read_text())
    tests["rule_files"] = ["rules.yaml"]
    (tmp_path / "rules_test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))

    result = subprocess.run(
        [promtool(), "test", "rules", "rules_test.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test_that_fires_it_and_one_that_does_not() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(TESTS.read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alerts()}
    assert names - firing == set(), "alerts no promtool test fires"
    assert names - quiet == set(), "alerts no promtool test shows quiet"
    assert (firing | quiet) - names == set(), "tests of alerts that do not exist"


def test_the_alerts_the_issue_asks_for_exist() -> None:
    assert {rule["alert"] for rule in alerts()} >= {
        "NodekeeperAgentDown",
        "NodekeeperLogLinesLost",
        "NodekeeperLogLagGrowing",
        "NodekeeperLogStorePaused",
        "NodekeeperNodePressure",
        "NodekeeperWorkloadCrashLooping",
        "NodekeeperBackupFailed",
        "NodekeeperNoRecentBackup",
        "NodekeeperAgentMemoryHigh",
    }


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_an_alert_says_how_bad_it_is_and_what_to_do(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) == {"summary", "description", "runbook_url"}
    assert len(annotations["description"]) > 100
    anchor = rule["alert"].lower()
    assert annotations["runbook_url"] == RUNBOOK_URL + anchor


def test_every_alert_has_a_runbook_section_and_no_section_is_stale() -> None:
    sections = set(re.findall(r"^## (Nodekeeper\w+)$", RUNBOOK.read_text(), flags=re.MULTILINE))
    assert sections == {rule["alert"] for rule in alerts()}
    for name in sections:
        body = RUNBOOK.read_text().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning.**", "**First checks.**", "**Fix.**"):
            assert part in body, f"{name}: no {part}"
