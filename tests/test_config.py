import pytest

from recsys_lab.config import Config, load_config, parse_value
from recsys_lab.errors import ConfigError


def test_defaults_round_trip_through_dict_and_toml(tmp_path):
    cfg = Config()
    assert Config.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "c.toml"
    path.write_text(cfg.replace({"model.epochs": 7}).to_toml())
    assert load_config(path).model.epochs == 7


def test_defaults_do_not_use_demographics_that_hurt():
    cfg = Config()
    assert cfg.features.user == ()
    assert cfg.features.item is None and cfg.features.item_columns(["item_id", "genre"]) == ("genre",)


@pytest.mark.parametrize("overrides, match", [
    ({"model.epoch": 3}, r"model\.epoch: unknown parameter"),
    ({"modle.epochs": 3}, r"modle\.epochs: expected SECTION\.KEY"),
    ({"model.epochs": "ten"}, r"model\.epochs: expected an integer, got 'ten'"),
    ({"model.epochs": 0}, r"model\.epochs: must be >= 1"),
    ({"model.loss": "mse"}, r"model\.loss: unknown loss"),
    ({"features.windows": [0]}, r"features\.windows: days must be >= 1"),
    ({"data.weight_range": [5, 1]}, r"data\.weight_range: expected \[\] or \[min, max\]"),
    ({"data.source": "csv"}, r"data\.source: unknown source"),
    ({"data.source": "files"}, r"data\.interactions: source .files. needs an interactions file"),
    ({"validate.warn": ["nulls"]}, r"validate\.warn: unknown check .nulls."),
])
def test_bad_parameters_name_the_parameter(overrides, match):
    with pytest.raises(ConfigError, match=match):
        Config().replace(overrides)


def test_unknown_section_in_dict_is_an_error():
    with pytest.raises(ConfigError, match="modell: unknown section"):
        Config.from_dict({"modell": {"epochs": 3}})


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nepochs = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_parse_value_reads_toml_literals_else_strings():
    assert parse_value("5") == 5
    assert parse_value("0.5") == 0.5
    assert parse_value("true") is True
    assert parse_value('["genre", "decade"]') == ["genre", "decade"]
    assert parse_value("/some/path") == "/some/path"
