"""ROS 2 parameter files -> flat parameters -> typed dataclass configs, with named errors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from navkit.common import ParameterError, config_from_params, load_node_params
from navkit.stack.config import DEFAULT_PARAMS_FILE, load_stack_config


def _write(tmp_path: Path, text: str, name: str = "params.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ load_node_params


def test_wildcard_section_is_merged_first_and_node_section_overrides(tmp_path: Path) -> None:
    path = _write(tmp_path, """
/**:
  ros__parameters:
    use_sim_time: true
    rate_hz: 1.0
    shared: 7
planner:
  ros__parameters:
    rate_hz: 5.0
other:
  ros__parameters:
    rate_hz: 99.0
""")
    params = load_node_params(path, "planner")
    assert params == {"use_sim_time": True, "rate_hz": 5.0, "shared": 7}
    # A node without its own section still gets the wildcard values.
    assert load_node_params(path, "controller") == {"use_sim_time": True, "rate_hz": 1.0, "shared": 7}


def test_namespaced_node_matches_full_and_bare_section_full_wins(tmp_path: Path) -> None:
    path = _write(tmp_path, """
planner:
  ros__parameters: {rate_hz: 2.0, observe_range_m: 3.0}
/robot_0/planner:
  ros__parameters: {rate_hz: 4.0}
""")
    assert load_node_params(path, "/robot_0/planner") == {"rate_hz": 4.0, "observe_range_m": 3.0}
    assert load_node_params(path, "robot_0/planner") == {"rate_hz": 4.0, "observe_range_m": 3.0}
    # Another namespace only matches the bare name.
    assert load_node_params(path, "/robot_1/planner") == {"rate_hz": 2.0, "observe_range_m": 3.0}


def test_nested_parameters_become_dotted_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, """
safety_filter:
  ros__parameters:
    filter_on_scan: false
    cbf:
      alpha: 2.5
      inner: {deep: [1, 2]}
""")
    assert load_node_params(path, "safety_filter") == {
        "filter_on_scan": False, "cbf.alpha": 2.5, "cbf.inner.deep": [1, 2]}


def test_empty_file_and_absent_node_give_no_parameters(tmp_path: Path) -> None:
    assert load_node_params(_write(tmp_path, "", "empty.yaml"), "planner") == {}
    path = _write(tmp_path, "planner:\n  ros__parameters: {rate_hz: 1.0}\n")
    assert load_node_params(path, "controller") == {}


def test_missing_file_is_a_parameter_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ParameterError) as err:
        load_node_params(missing, "planner")
    assert err.value.source == str(missing)
    assert err.value.field == "<file>"
    assert "nope.yaml" in str(err.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "planner:\n  ros__parameters:\n    rate_hz: [1.0\n    other: 2\n", "bad.yaml")
    with pytest.raises(ParameterError) as err:
        load_node_params(path, "planner")
    assert err.value.source == str(path)
    assert err.value.field.startswith("line ")
    assert int(err.value.field.split()[1].rstrip(",")) >= 3  # "line L, column C"
    assert "malformed YAML" in str(err.value)


@pytest.mark.parametrize("text, field", [
    ("planner:\n  rate_hz: 1.0\n", "planner"),
    ("planner: 3\n", "planner"),
    ("/**:\n  params: {a: 1}\n", "/**"),
    ("planner:\n  ros__parameters: [1, 2]\n", "planner.ros__parameters"),
])
def test_section_without_ros_parameters_names_the_section(tmp_path: Path, text: str, field: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_node_params(path, "planner")
    assert err.value.source == str(path)
    assert err.value.field == field


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "- planner\n- controller\n")
    with pytest.raises(ParameterError) as err:
        load_node_params(path, "planner")
    assert err.value.field == "<top level>"


# ------------------------------------------------------------------ config_from_params


@dataclass(frozen=True)
class _Cfg:
    gain: float = 1.0
    count: int = 3
    enabled: bool = True
    label: str = "x"
    weights: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.gain <= 0:
            raise ValueError("gain must be > 0")


def test_int_is_accepted_for_float_and_converted() -> None:
    cfg = config_from_params(_Cfg, {"gain": 2}, "f.yaml")
    assert cfg.gain == 2.0 and isinstance(cfg.gain, float)


def test_missing_keys_keep_defaults_and_values_are_typed() -> None:
    cfg = config_from_params(_Cfg, {"count": 5, "label": "y", "weights": [1, 2.5]}, "f.yaml")
    assert cfg == _Cfg(gain=1.0, count=5, enabled=True, label="y", weights=(1.0, 2.5))
    assert isinstance(cfg.weights, tuple) and all(isinstance(w, float) for w in cfg.weights)


@pytest.mark.parametrize("key, value", [
    ("enabled", 1), ("enabled", "true"), ("enabled", 0.0),
    ("gain", True), ("gain", "1.0"), ("gain", float("nan")), ("gain", float("inf")),
    ("count", 2.0), ("count", False),
    ("label", 3),
    ("weights", 1.0), ("weights", [1.0, "a"]),
])
def test_wrong_types_are_parameter_errors_naming_the_key(key: str, value: object) -> None:
    with pytest.raises(ParameterError) as err:
        config_from_params(_Cfg, {key: value}, "f.yaml")
    assert err.value.source == "f.yaml"
    assert err.value.field.startswith(key)


def test_unknown_key_names_the_key_with_its_prefix() -> None:
    with pytest.raises(ParameterError) as err:
        config_from_params(_Cfg, {"cbf.gain": 2.0, "cbf.alhpa": 1.0}, "f.yaml", prefix="cbf")
    assert err.value.field == "cbf.alhpa"
    assert "cbf.alhpa" in str(err.value) and "f.yaml" in str(err.value)
    with pytest.raises(ParameterError) as err:
        config_from_params(_Cfg, {"gian": 2.0}, "f.yaml")
    assert err.value.field == "gian"


def test_prefix_selects_only_its_keys() -> None:
    params = {"gain": 9.0, "cbf.gain": 2.0, "other.gain": 5.0, "other.bogus": 1}
    assert config_from_params(_Cfg, params, "f.yaml", prefix="cbf").gain == 2.0
    # Without a prefix, dotted keys belong to sub-configs and are skipped.
    assert config_from_params(_Cfg, params, "f.yaml").gain == 9.0


def test_post_init_value_error_becomes_parameter_error() -> None:
    with pytest.raises(ParameterError) as err:
        config_from_params(_Cfg, {"cbf.gain": -1.0}, "f.yaml", prefix="cbf")
    assert err.value.source == "f.yaml"
    assert err.value.field == "cbf"
    assert "gain must be > 0" in str(err.value)
    with pytest.raises(ParameterError) as err:
        config_from_params(_Cfg, {"gain": 0.0}, "f.yaml")
    assert err.value.field == "_Cfg"


def test_ros_reserved_parameters_are_ignored() -> None:
    cfg = config_from_params(_Cfg, {"use_sim_time": True, "start_type_description_service": False,
                                    "qos_overrides./scan.subscription.depth": 5, "count": 4}, "f.yaml")
    assert cfg == _Cfg(count=4)


def test_not_a_dataclass_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        config_from_params(dict, {}, "f.yaml")


# ------------------------------------------------------------------ the shipped file


def test_shipped_params_file_loads_with_its_written_values() -> None:
    raw = yaml.safe_load(DEFAULT_PARAMS_FILE.read_text())
    cfg = load_stack_config()
    assert cfg.source == str(DEFAULT_PARAMS_FILE)
    sf = raw["safety_filter"]["ros__parameters"]
    assert cfg.safety_filter.name == sf["safety_filter"]["plugin"] == "cbf_lidar"
    for key, value in sf["safety_filter"].items():
        if key != "plugin":
            assert getattr(cfg.safety_filter.config, key) == pytest.approx(value), f"safety_filter.{key}"
    assert cfg.safety_filter_node.filter_on_scan is sf["filter_on_scan"]
    ctl = raw["controller"]["ros__parameters"]
    assert cfg.local_controller.name == ctl["local_controller"]["plugin"] == "pure_pursuit"
    for key, value in ctl["local_controller"].items():
        if key != "plugin":
            assert getattr(cfg.local_controller.config, key) == pytest.approx(value), f"local_controller.{key}"
    assert cfg.controller.rate_hz == ctl["rate_hz"]
    pl = raw["planner"]["ros__parameters"]
    assert cfg.global_planner.name == "grid_astar" and cfg.map_source.name == "scenario"
    for key, value in pl["global_planner"].items():
        if key != "plugin":
            assert getattr(cfg.global_planner.config, key) == pytest.approx(value), f"global_planner.{key}"
    assert cfg.planner.rate_hz == pl["rate_hz"]
    assert cfg.planner.observe_range_m == pl["observe_range_m"]
    br = raw["robot_bridge"]["ros__parameters"]
    for key, value in br.items():
        if key == "serial_base":  # the serial driver's own section, read when robot:=serial_base
            continue
        assert getattr(cfg.bridge, key) == value, f"robot_bridge.{key}"
    from navkit.common.params import load_node_params
    from navkit.stack.config import bridge_from_params
    from navkit.stack.plugin_catalog import default_registry

    _, serial = bridge_from_params({**load_node_params(DEFAULT_PARAMS_FILE, "robot_bridge"), "backend": "serial_base"},
                                   "t", default_registry())
    assert serial.config.port == br["serial_base"]["port"]
    # Spot checks against the literal values, so an edit to both file and loader is noticed.
    assert cfg.safety_filter.config.alpha == 1.0 and cfg.local_controller.config.v_max == 0.7
    assert cfg.safety_filter.config.v_max == 0.8


def test_stack_config_changed_value_and_namespace(tmp_path: Path) -> None:
    text = DEFAULT_PARAMS_FILE.read_text().replace("alpha: 1.0", "alpha: 2.5")
    text += "\n/robot_0/controller:\n  ros__parameters:\n    local_controller: {v_max: 0.4}\n"
    path = _write(tmp_path, text)
    assert load_stack_config(path).safety_filter.config.alpha == 2.5
    assert load_stack_config(path).local_controller.config.v_max == 0.7
    assert load_stack_config(path, namespace="/robot_0").local_controller.config.v_max == 0.4


def test_stack_config_unknown_key_names_it(tmp_path: Path) -> None:
    text = DEFAULT_PARAMS_FILE.read_text().replace("alpha: 1.0", "alpha: 1.0\n      alhpa: 2.0")
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_stack_config(path)
    assert err.value.field == "safety_filter.alhpa"
    assert err.value.source == str(path)


def test_stack_config_unknown_plugin_names_the_known_ones(tmp_path: Path) -> None:
    text = DEFAULT_PARAMS_FILE.read_text().replace("plugin: pure_pursuit", "plugin: pure_persuit")
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_stack_config(path)
    assert err.value.field == "local_controller.plugin"
    assert "did you mean pure_pursuit" in err.value.problem


def test_stack_config_invalid_value_is_parameter_error(tmp_path: Path) -> None:
    text = DEFAULT_PARAMS_FILE.read_text().replace("cmd_timeout_s: 0.5", "cmd_timeout_s: -0.5")
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_stack_config(path)
    assert "cmd_timeout_s" in str(err.value)


def test_a_group_no_sub_config_claims_is_an_error(tmp_path: Path) -> None:
    """A file written for the old layout (``cbf:`` instead of ``safety_filter:``) must not be ignored."""
    text = DEFAULT_PARAMS_FILE.read_text().replace("    safety_filter:\n      plugin: cbf_lidar\n", "    cbf:\n")
    path = _write(tmp_path, text)
    with pytest.raises(ParameterError) as err:
        load_stack_config(path)
    assert err.value.field == "cbf.alpha" and "unknown parameter group 'cbf'" in err.value.problem
