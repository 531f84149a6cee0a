"""Settings come from flags, then the environment, then defaults; bad ones get one clear line."""

import re
import subprocess
import sys
import typing
from pathlib import Path

import pytest
from pydantic import AliasChoices

from nodekeeper.config import Settings, SettingsError, env_name, load

# The settings given as JSON: a dict or list, in a flag or an environment variable alike.
JSON_SETTINGS = [
    name
    for name, info in Settings.model_fields.items()
    if typing.get_origin(info.annotation) in (dict, list)
]


def test_defaults_when_nothing_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NODE_NAME", "NODEKEEPER_NODE_NAME", "KUBECONFIG", "NODEKEEPER_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load()
    assert settings.http_port == 8080
    assert settings.node_name == ""
    assert settings.kubeconfig is None


def test_node_name_from_the_downward_api_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODE_NAME", "worker-1")
    assert load().node_name == "worker-1"


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODEKEEPER_HTTP_PORT", "9000")
    assert load().http_port == 9000
    assert load({"http_port": "9100"}).http_port == 9100


def aliased_variables(field: str) -> list[str]:
    """The environment variables pydantic reads ``field`` from, besides NODEKEEPER_<NAME>."""
    aliases = Settings.model_fields[field].validation_alias
    if not isinstance(aliases, AliasChoices):
        return []
    return [name for name in aliases.choices if isinstance(name, str) and name.isupper()]


ALIASED = [name for name in Settings.model_fields if aliased_variables(name)]


def test_the_variables_the_chart_sets_are_aliases() -> None:
    assert {"node_name", "pod_name", "kubeconfig"} <= set(ALIASED)
    assert "NODE_NAME" in aliased_variables("node_name")


def test_a_missing_node_name_names_every_variable_it_is_read_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NODE_NAME", raising=False)
    monkeypatch.delenv("NODEKEEPER_NODE_NAME", raising=False)
    with pytest.raises(SettingsError) as caught:
        load().require_node()
    message = str(caught.value)
    assert set(aliased_variables("node_name")) <= set(re.findall(r"\b[A-Z_]+\b", message))
    assert message.endswith("or pass --node-name")


@pytest.mark.parametrize("field", ALIASED)
def test_an_invalid_setting_names_every_variable_it_is_read_from(field: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load({field: 5})
    where = re.search(r"\((.*) or --", str(caught.value))
    assert where is not None
    assert where[1].split(", ") == aliased_variables(field)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"http_port": "eighty"}, "http_port (NODEKEEPER_HTTP_PORT or --http-port) is invalid"),
        ({"http_port": "70000"}, "less than or equal to 65535"),
        (
            {"node_name": "Node_1"},
            "node_name (NODEKEEPER_NODE_NAME, NODE_NAME or --node-name) is invalid",
        ),
        ({"log_format": "xml"}, "'json' or 'text'"),
    ],
)
def test_an_invalid_setting_names_itself_and_what_it_expects(
    overrides: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load(overrides)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("environment", "first", "second"),
    [
        (
            {"NODEKEEPER_PRESSURE_ENTER_RATIO": "0.01", "NODEKEEPER_PRESSURE_EXIT_RATIO": "0.5"},
            "pressure_exit_ratio",
            "pressure_enter_ratio",
        ),
        (
            {"NODEKEEPER_PRESSURE_TRIGGER_STALL_US": "2000000"},
            "pressure_trigger_stall_us",
            "pressure_trigger_window_us",
        ),
    ],
)
def test_settings_that_contradict_each_other_name_both(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], first: str, second: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load()
    message = str(caught.value)
    assert message.startswith(f"setting {first} ({env_name(first)} or --")
    assert f"contradicts {second} ({env_name(second)} or --" in message
    assert "\n" not in message


def test_settings_at_the_edge_of_a_pair_are_accepted() -> None:
    settings = load(
        {
            "pressure_enter_ratio": "0.2",
            "pressure_exit_ratio": "0.2",
            "pressure_trigger_stall_us": "1000000",
            "pressure_trigger_window_us": "1000000",
        }
    )
    assert settings.pressure_exit_ratio == settings.pressure_enter_ratio
    assert load({"pressure_trigger_stall_us": "0"}).pressure_trigger_stall_us == 0


def test_a_trigger_window_the_kernel_refuses_is_refused() -> None:
    with pytest.raises(SettingsError, match="less than or equal to 10000000"):
        load({"pressure_trigger_window_us": "20000000"})


def test_the_pressure_parts_accept_what_the_settings_accept() -> None:
    """The pairs above are the rules of Threshold and open_trigger, not stricter ones."""
    from nodekeeper.pressure.thresholds import Threshold

    settings = load({"pressure_enter_ratio": "0.2", "pressure_exit_ratio": "0.2"})
    Threshold(enter_ratio=settings.pressure_enter_ratio, exit_ratio=settings.pressure_exit_ratio)
    with pytest.raises(ValueError, match="exit_ratio"):
        Threshold(enter_ratio=0.01, exit_ratio=0.5)


def test_json_settings_are_found() -> None:
    assert {"image_policy", "log_include", "log_exclude"} <= set(JSON_SETTINGS)


@pytest.mark.parametrize("field", JSON_SETTINGS)
@pytest.mark.parametrize("value", ["{bad", "nope"])
def test_bad_json_in_the_environment_names_the_setting_and_its_shape(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(env_name(field), value)
    with pytest.raises(SettingsError) as caught:
        load()
    message = str(caught.value)
    assert message.startswith(f"setting {field} ({env_name(field)} or --")
    assert "not JSON" in message
    assert "expected a JSON " in message
    assert "\n" not in message


@pytest.mark.parametrize("field", JSON_SETTINGS)
def test_json_in_the_environment_is_read_as_in_a_flag(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    value = '{"team-a": ["registry.example/*"]}' if field == "image_policy" else '["name=x"]'
    monkeypatch.setenv(env_name(field), value)
    from_env = getattr(load(), field)
    monkeypatch.delenv(env_name(field))
    assert from_env == getattr(load({field: value}), field)


def nodekeeper(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nodekeeper.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def test_run_with_a_bad_setting_exits_2_with_one_line() -> None:
    result = nodekeeper("run", "--node-name", "n1", "--http-port", "x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("nodekeeper: setting http_port")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("NODEKEEPER_IMAGE_POLICY", "{bad"), ("NODEKEEPER_LOG_EXCLUDE", "nope")],
)
def test_run_with_bad_json_in_the_environment_exits_2_with_one_line(
    variable: str, value: str
) -> None:
    result = nodekeeper("run", "--node-name", "n1", env={variable: value})
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(f"nodekeeper: setting {variable.lower()[11:]} ({variable} or")


def test_run_with_contradicting_settings_exits_2_with_one_line() -> None:
    result = nodekeeper(
        "run", "--offline", "--pressure-enter-ratio", "0.01", "--pressure-exit-ratio", "0.5"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("nodekeeper: setting pressure_exit_ratio")


def test_run_without_a_node_exits_2_with_one_line() -> None:
    result = nodekeeper("run")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("or pass --node-name")
    assert result.stderr.count("\n") == 1


def test_run_with_a_missing_kubeconfig_exits_1_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = nodekeeper("run", "--node-name", "n1", "--kubeconfig", str(missing))
    assert result.returncode == 1
    assert result.stderr == f"nodekeeper: kubeconfig {missing} does not exist or is not a file\n"


def test_version_and_help() -> None:
    assert nodekeeper("--version").stdout.startswith("nodekeeper 0.")
    help_text = nodekeeper("run", "--help").stdout
    for flag in ("--node-name", "--kubeconfig", "--http-port", "--log-format"):
        assert flag in help_text
