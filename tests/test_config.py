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


# -- types and ranges are checked when a section is built directly, not only by from_dict ------------------------
from recsys_lab.config import (  # noqa: E402
    AnnConfig,
    DataConfig,
    EvalConfig,
    FeatureConfig,
    GateConfig,
    ModelConfig,
    RunConfig,
    SplitConfig,
    ValidateConfig,
)


@pytest.mark.parametrize("build, match", [
    (lambda: ModelConfig(epochs=3.5), r"^model\.epochs: expected an integer, got 3\.5$"),
    (lambda: ModelConfig(no_components=True), r"^model\.no_components: expected an integer, got True$"),
    (lambda: ModelConfig(refit=1), r"^model\.refit: expected true or false, got 1$"),
    (lambda: ModelConfig(loss=3), r"^model\.loss: expected a string, got 3$"),
    (lambda: ModelConfig(learning_rate=float("nan")), r"^model\.learning_rate: expected a finite number, got nan$"),
    (lambda: ModelConfig(item_alpha=float("inf")), r"^model\.item_alpha: expected a finite number, got inf$"),
    (lambda: SplitConfig(test_fraction=float("nan")), r"^split\.test_fraction: expected a finite number"),
    (lambda: SplitConfig(seed=4.0), r"^split\.seed: expected an integer"),
    (lambda: DataConfig(positive_threshold=float("nan")), r"^data\.positive_threshold: expected a finite number"),
    (lambda: DataConfig(weight_range=(float("nan"), 5)), r"^data\.weight_range: expected a list of numbers"),
    (lambda: FeatureConfig(windows=(7.5,)), r"^features\.windows: expected a list of integers"),
    (lambda: FeatureConfig(user="age"), r"^features\.user: expected a list of strings"),
    (lambda: AnnConfig(epsilon=float("nan")), r"^ann\.epsilon: expected a finite number"),
    (lambda: EvalConfig(k=10.0), r"^eval\.k: expected an integer"),
    (lambda: EvalConfig(max_ci_width=float("inf")), r"^eval\.max_ci_width: expected a finite number"),
    (lambda: EvalConfig(als_grid=[[64, float("nan"), 1.0]]), r"^eval\.als_grid: expected a non-empty list"),
    (lambda: ValidateConfig(min_year=False), r"^validate\.min_year: expected an integer"),
    (lambda: GateConfig(min={"ndcg@k": float("nan")}), r"^gate\.min\.ndcg@k: expected a finite number, got nan$"),
    (lambda: GateConfig(max_regression={"ndcg@k": float("inf")}), r"^gate\.max_regression\.ndcg@k: expected a finite"),
    (lambda: RunConfig(max_minutes=float("inf")), r"^run\.max_minutes: expected a finite number"),
    (lambda: Config(model={"epochs": 3}), r"^model: expected a ModelConfig"),
])
def test_sections_built_directly_check_types_and_finite_numbers(build, match):
    with pytest.raises(ConfigError, match=match):
        build()


def test_from_dict_messages_and_accepted_values_are_unchanged():
    with pytest.raises(ConfigError, match=r"^model\.epochs: expected an integer, got 3\.5$"):
        Config.from_dict({"model": {"epochs": 3.5}})
    with pytest.raises(ConfigError, match=r"^gate\.min\.ndcg@k: expected a number, got 'high'$"):
        Config.from_dict({"gate": {"min": {"ndcg@k": "high"}}})
    cfg = Config.from_dict({"model": {"learning_rate": 1}, "data": {"weight_range": [0, float("inf")]},
                            "features": {"windows": [7, 28]}, "eval": {"als_grid": [[32, 0.5, 1]]}})
    assert cfg.model.learning_rate == 1 and cfg.data.weight_range == (0.0, float("inf"))
    assert cfg.features.windows == (7, 28) and cfg.eval.als_grid == ((32, 0.5, 1.0),)
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_rank_section_is_validated():
    from recsys_lab.config import RankConfig

    assert Config().rank == RankConfig() and Config().rank.enabled is False
    c = Config.from_dict({"rank": {"enabled": True, "candidates": {"model": 50, "ease": 200}, "blend": ["model"]}})
    assert c.rank.candidates == {"model": 50, "ease": 200} and c.rank.blend == ("model",)
    assert Config.from_dict(c.to_dict()) == c
    for bad, where in (({"candidates": {"lightgbm": 5}}, "rank.candidates.lightgbm"),
                       ({"candidates": {"model": 0}}, "rank.candidates.model"), ({"candidates": {}}, "rank.candidates"),
                       ({"blend": ["model", "model"]}, "rank.blend"), ({"blend_step": 0.0}, "rank.blend_step"),
                       ({"holdout": 1.0}, "rank.holdout"), ({"learning_rate": 2.0}, "rank.learning_rate")):
        with pytest.raises(ConfigError) as info:
            Config.from_dict({"rank": bad})
        assert info.value.parameter == where, bad


def test_rank_serve_is_model_or_a_blend_that_runs():
    assert Config().rank.serve == "model"
    c = Config().replace({"rank.enabled": True, "rank.serve": "blend"})
    assert c.rank.serve == "blend" and Config.from_dict(c.to_dict()) == c
    for bad, message in (({"serve": "ranker"}, "expected one of \\('model', 'blend'\\), got 'ranker'"),
                         ({"serve": "blend"}, "'blend' needs rank.enabled = true and a non-empty rank.blend"),
                         ({"serve": "blend", "enabled": True, "blend": []}, "needs rank.enabled"),
                         ({"serve": 1}, "expected a string, got 1")):
        with pytest.raises(ConfigError, match=message) as info:
            Config.from_dict({"rank": bad})
        assert info.value.parameter == "rank.serve", bad
