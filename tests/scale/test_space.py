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
