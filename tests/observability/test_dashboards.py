"""The dashboards are generated (observability/dashboards.py) and the committed JSON is current;
each one says which questions it answers, and lets the user choose data source and nodes.
"""

import json
from typing import Any

import pytest
from observability.promql import DASHBOARDS

from observability import dashboards


def committed(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DASHBOARDS / f"{name}.json").read_text())
    return result


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.name)
def test_the_committed_json_is_what_the_generator_writes(board: dashboards.Board) -> None:
    path = DASHBOARDS / f"{board.name}.json"
    assert path.read_text() == dashboards.render(board), f"{path} is stale: run `make dashboards`"


def test_no_dashboard_json_without_a_generator() -> None:
    assert {path.stem for path in DASHBOARDS.glob("*.json")} == {
        board.name for board in dashboards.BOARDS
    }


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.name)
def test_a_dashboard_states_its_questions(board: dashboards.Board) -> None:
    description = committed(board.name)["description"]
    assert board.questions
    for question in board.questions:
        assert question.endswith("?")
        assert question in description


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.name)
def test_data_source_and_node_are_variables(board: dashboards.Board) -> None:
    document = committed(board.name)
    variables = {variable["name"]: variable for variable in document["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["node"]["query"] == "label_values(nodekeeper_agent_info, node)"
    assert variables["node"]["includeAll"] is True
    assert variables["node"]["allValue"] == ".*"

    for panel in document["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


@pytest.mark.parametrize("board", dashboards.BOARDS, ids=lambda board: board.name)
def test_every_panel_explains_itself(board: dashboards.Board) -> None:
    for panel in committed(board.name)["panels"]:
        if panel["type"] != "row":
            assert panel.get("description"), panel["title"]


def test_uids_are_stable_and_distinct() -> None:
    uids = [committed(board.name)["uid"] for board in dashboards.BOARDS]
    assert uids == [f"nodekeeper-{board.name}" for board in dashboards.BOARDS]
