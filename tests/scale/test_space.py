"""The sweep file: a bad space is a ConfigError before Ray starts (no Ray in these tests)."""

from __future__ import annotations

import pytest

from recsys_lab.errors import ConfigError
from recsys_lab.scale.space import SweepConfig, expand, load_sweep

GOOD = """
[sweep]
params = {"model.epochs" = 4}
search = "random"
samples = 5
seed = 3
[sweep.space]
"model.no_components" = [8, 16]
"model.learning_rate" = {loguniform = [0.01, 0.1]}
"model.max_sampled" = {randint = [10, 20]}
[ray]
num_cpus = 2
"""


def _write(tmp_path, text):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    return path


def test_good_file_expands_deterministically(tmp_path):
    sweep = load_sweep(_write(tmp_path, GOOD))
    assert sweep.base.model.epochs == 4 and sweep.ray.num_cpus == 2 and sweep.trials == 5
    trials = expand(sweep)
    assert trials == expand(load_sweep(_write(tmp_path, GOOD)))
    assert len(trials) == 5
    for t in trials:
        assert t["model.no_components"] in (8, 16) and 0.01 <= t["model.learning_rate"] <= 0.1
        assert 10 <= t["model.max_sampled"] < 20


def test_grid_is_every_combination(tmp_path):
    sweep = load_sweep(_write(tmp_path, '[sweep]\nsearch = "grid"\nsamples = 1\n[sweep.space]\n'
                                        '"model.no_components" = [8, 16]\n"model.loss" = ["warp", "bpr"]\n'))
    assert sweep.trials == 4 and len({tuple(sorted(t.items())) for t in expand(sweep)}) == 4


@pytest.mark.parametrize("space, parameter", [
    ('"model.nope" = [1, 2]', "model.nope"),                       # unknown key
    ('"data.min_rating" = [1, 2]', "sweep.space.data.min_rating"),   # not a model key: the split is shared
    ('"model.learning_rate" = {gaussian = [0, 1]}', "sweep.space.model.learning_rate"),  # unknown distribution
    ('"model.learning_rate" = {loguniform = [0.0, 1]}', "sweep.space.model.learning_rate"),  # log of 0
    ('"model.learning_rate" = {uniform = [0.1, 0.01]}', "sweep.space.model.learning_rate"),  # low above high
    ('"model.no_components" = []', "sweep.space.model.no_components"),  # empty choice
    ('"model.loss" = ["warp", "hinge"]', "model.loss"),              # a value the schema refuses
])
def test_bad_space_is_a_config_error(tmp_path, space, parameter):
    with pytest.raises(ConfigError) as err:
        load_sweep(_write(tmp_path, f"[sweep]\n[sweep.space]\n{space}\n"))
    assert err.value.parameter == parameter


def test_empty_space_and_bad_settings(tmp_path):
    with pytest.raises(ConfigError, match="empty"):
        load_sweep(_write(tmp_path, "[sweep]\nsamples = 2\n"))
    with pytest.raises(ConfigError):
        load_sweep(_write(tmp_path, '[sweep]\nsearch = "bayes"\n[sweep.space]\n"model.epochs" = [1, 2]\n'))
    with pytest.raises(ConfigError):
        load_sweep(_write(tmp_path, '[sweep]\nsearch = "grid"\n[sweep.space]\n'
                                    '"model.learning_rate" = {uniform = [0.01, 0.1]}\n'))
    with pytest.raises(ConfigError):
        load_sweep(_write(tmp_path, '[sweep]\ntrials = 3\n[sweep.space]\n"model.epochs" = [1, 2]\n'))
    with pytest.raises(ConfigError):
        load_sweep(_write(tmp_path, '[ray]\nport = 1\n[sweep]\n[sweep.space]\n"model.epochs" = [1, 2]\n'))
    with pytest.raises(ConfigError, match="patience"):
        load_sweep(_write(tmp_path, '[sweep]\nparams = {"model.patience" = 0}\n[sweep.space]\n'
                                    '"model.epochs" = [1, 2]\n'))


def test_sweep_config_checks_in_post_init():
    with pytest.raises(ConfigError):
        SweepConfig(space={})


OPTUNA = """
[sweep]
search = "optuna"
samples = 6
seed = 1
[sweep.space]
"model.no_components" = [8, 16]
"model.learning_rate" = {loguniform = [0.01, 0.1]}
"model.max_sampled" = {randint = [10, 20]}
"model.item_alpha" = {uniform = [0.0, 1e-4]}
"""


def test_optuna_space_translates_to_tune_domains(tmp_path):
    pytest.importorskip("optuna")
    pytest.importorskip("ray")
    from ray.tune.search.optuna import OptunaSearch
    from ray.tune.search.sample import Categorical, Float, Integer, LogUniform, Uniform

    from recsys_lab.scale.space import tune_space

    sweep = load_sweep(_write(tmp_path, OPTUNA))
    assert sweep.trials == 6 and expand(sweep) == []  # Optuna proposes the trials, nothing is drawn ahead
    space = tune_space(sweep)
    assert isinstance(space["model.no_components"], Categorical) and space["model.no_components"].categories == [8, 16]
    lr = space["model.learning_rate"]
    assert isinstance(lr, Float) and isinstance(lr.get_sampler(), LogUniform) and (lr.lower, lr.upper) == (0.01, 0.1)
    assert isinstance(space["model.max_sampled"], Integer) and (space["model.max_sampled"].lower,
                                                                space["model.max_sampled"].upper) == (10, 20)
    assert isinstance(space["model.item_alpha"].get_sampler(), Uniform)
    # Optuna's own distributions, as the sampler sees them (randint's high is exclusive in Tune, inclusive in Optuna)
    optuna_space = OptunaSearch.convert_search_space(space)
    assert optuna_space["model.learning_rate"].log and optuna_space["model.max_sampled"].high == 19
    assert optuna_space["model.no_components"].choices == (8, 16)


@pytest.mark.parametrize("space, parameter, message", [
    ('"model.learning_rate" = {gaussian = [0, 1]}', "sweep.space.model.learning_rate", "unknown distribution"),
    ('"model.learning_rate" = {loguniform = [0.0, 0.1]}', "sweep.space.model.learning_rate", "low must be > 0"),
    ('"model.max_sampled" = {randint = [10.5, 20]}', "sweep.space.model.max_sampled", "expected integers"),
    ('"model.no_components" = [[8], [16]]', "sweep.space.model.no_components", "optuna: a choice takes"),
])
def test_bad_optuna_distribution_is_a_config_error(tmp_path, space, parameter, message):
    pytest.importorskip("optuna")
    with pytest.raises(ConfigError, match=message) as err:
        load_sweep(_write(tmp_path, f'[sweep]\nsearch = "optuna"\n[sweep.space]\n{space}\n'))
    assert err.value.parameter == parameter


def test_optuna_not_installed_is_a_config_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "optuna" else real(name, *a))
    with pytest.raises(ConfigError, match="optuna is not installed"):
        load_sweep(_write(tmp_path, OPTUNA))
