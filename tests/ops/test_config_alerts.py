"""``[alerts]``: bad alert input is a ConfigError naming the key, before any run starts (issue 18 item 6)."""

from __future__ import annotations

import apprise
import pytest

from recsys_lab.cli.main import main
from recsys_lab.config import (
    APPRISE_SCHEMES,
    AlertsConfig,
    Config,
    load_config,
    parse_duration,
)
from recsys_lab.errors import ConfigError


def test_defaults_alert_on_everything_but_promotion_and_round_trip():
    a = Config().alerts
    assert "promoted" not in a.rules and {"failed", "timed_out", "stopped", "gate", "sla"} <= set(a.rules)
    assert a.level("failed") == "critical" and a.level("gate") == "warning"
    assert Config.from_dict(Config().to_dict()) == Config()
    assert load_config(None) == Config()


@pytest.mark.parametrize("overrides, key", [
    ({"alerts.urls": ["foo://host/x"]}, "alerts.urls"),
    ({"alerts.urls": ["not a url"]}, "alerts.urls"),
    ({"alerts.sla": "26x"}, "alerts.sla"),
    ({"alerts.sla": "soon"}, "alerts.sla"),
    ({"alerts.max_production_age": "3 days"}, "alerts.max_production_age"),
    ({"alerts.min": {"ndcgg@k": 0.1}}, "alerts.min.ndcgg@k"),
    ({"alerts.min": {"ndcg@k": "high"}}, "alerts.min.ndcg@k"),
    ({"alerts.median": ["bogus@k"]}, "alerts.median"),
    ({"alerts.drift": {"psi.item_popularity": 0.2}}, "alerts.drift.psi.item_popularity"),
    ({"alerts.rules": ["failed", "exploded"]}, "alerts.rules"),
    ({"alerts.severity": {"gate": "info"}}, "alerts.severity.gate"),
    ({"alerts.severity": {"nope": "warning"}}, "alerts.severity.nope"),
    ({"alerts.median_runs": 0}, "alerts.median_runs"),
])
def test_bad_alert_settings_are_config_errors_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        Config().replace(overrides)
    assert info.value.parameter == key and str(info.value).startswith(key)


def test_unknown_scheme_error_does_not_echo_the_url_secret():
    with pytest.raises(ConfigError) as info:
        AlertsConfig(urls=("hooks://user:s3cret@example.com/x",))
    assert "s3cret" not in str(info.value) and "'hooks'" in str(info.value)


def test_environment_urls_are_checked_when_set(monkeypatch):
    monkeypatch.setenv("RECSYS_TEST_URL", "nope://token@host")
    with pytest.raises(ConfigError, match="alerts.urls: unknown Apprise URL scheme 'nope'"):
        AlertsConfig(urls=("$RECSYS_TEST_URL",))
    monkeypatch.delenv("RECSYS_TEST_URL")
    assert AlertsConfig(urls=("${RECSYS_TEST_URL}",)).urls == ("${RECSYS_TEST_URL}",)  # checked when sent
    with pytest.raises(ConfigError, match="alerts.urls: expected \\$NAME"):
        AlertsConfig(urls=("$not a name",))


def test_accepted_schemes_are_ones_apprise_delivers_to():
    details = apprise.Apprise().details()["schemas"]
    known = {p for s in details for p in (*(s.get("protocols") or ()), *(s.get("secure_protocols") or ()))}
    assert APPRISE_SCHEMES <= known and {"json", "jsons", "slack", "mailto", "discord"} <= APPRISE_SCHEMES


def test_durations():
    assert parse_duration("26h") == 26 * 3600 and parse_duration("3d") == 3 * 86400
    assert parse_duration("1m") == 60 and parse_duration("1d12h") == 36 * 3600 and parse_duration("0h") == 0
    for bad in ("", "h", "26", "-1h", "1y"):
        with pytest.raises(ConfigError):
            parse_duration(bad, "alerts.sla")


def test_retrain_with_a_bad_alert_url_exits_2_before_any_run(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[alerts]\nurls = ["nope://x"]\n')
    assert main(["retrain"]) == 2
    err = capsys.readouterr().err
    assert "alerts.urls" in err and "unknown Apprise URL scheme 'nope'" in err
    assert not (tmp_path / "runs").exists()


def test_runs_check_with_a_bad_sla_exits_2(tmp_path, capsys):
    assert main(["runs", "check", "--sla", "tomorrow", "--runs-dir", str(tmp_path)]) == 2
    assert "--sla" in capsys.readouterr().err
