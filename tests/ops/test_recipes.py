"""The scheduler recipes under examples/: the crontab line run as a shell command, the systemd service and timer
(parsed, their commands run), and the Airflow DAG (loaded against stand-ins for Airflow: exit 3 fails the task)."""

from __future__ import annotations

import ast
import configparser
import json
import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pytest

from recsys_lab.cli.exits import EXIT_STALE
from recsys_lab.store.folder import production_file, update_manifest

from ..conftest import ROOT, cli
from .conftest import make_project

EXAMPLES = ROOT / "examples"
RECSYS_LAB = str(Path(sys.executable).parent / "recsys-lab")


def _cron_job() -> tuple[list[str], str]:
    """The crontab's job line: its five time fields and its command."""
    lines = [ln for ln in (EXAMPLES / "crontab").read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    jobs = [ln for ln in lines if "=" not in ln.split()[0]]
    assert len(jobs) == 1 and any(ln.startswith("MAILTO=") for ln in lines)
    fields = jobs[0].split(None, 5)
    return fields[:5], fields[5]


def _local(command: str, project: Path) -> str:
    """A recipe's command made to run here: the project folder and this environment's recsys-lab."""
    command = re.sub(r"(/srv/recsys/)?\.venv/bin/recsys-lab", lambda _: RECSYS_LAB, command)
    return command.replace("/srv/recsys", str(project))


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((EXAMPLES / name).read_text())
    return parser


def test_crontab_line_retrains_with_the_config_then_checks():
    when, command = _cron_job()
    assert when == ["0", "3", "*", "*", "*"]
    retrain, check = command.split("; ")
    assert " retrain -c config.toml --promote" in retrain and retrain.endswith(">> runs/cron.log 2>&1")
    assert " runs check -c config.toml" in check and "2>" not in check  # its complaint reaches cron's mail


@pytest.mark.slow
def test_the_crontab_line_itself_runs_then_runs_check_flags_a_stale_production(tmp_path, webhook):
    project = make_project(tmp_path, **{"alerts.urls": [webhook.url]})
    _, command = _cron_job()
    proc = subprocess.run(["/bin/sh", "-c", _local(command, project)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout, proc.stderr, (project / "runs" / "cron.log").read_text())
    log = (project / "runs" / "cron.log").read_text()
    assert log.startswith("config: config.toml") and "promoted to production" in log
    (run,) = [p for p in (project / "runs").iterdir() if p.is_dir()]
    assert production_file(project / "runs").read_text().strip() == run.name
    assert webhook.received == [] and not (project / "runs" / "alerts.json").exists()
    # a week without a successful retrain: production's run ended 8 days ago
    update_manifest(run, started_at="2026-01-01T03:00:00+00:00", ended_at="2026-01-01T03:01:00+00:00")
    stale = cli("runs", "check", "--sla", "1m", cwd=project)
    assert stale.returncode == EXIT_STALE, stale.stderr
    assert "SLA missed" in stale.stderr and f"production {run.name} is stale" in stale.stderr
    (body,) = webhook.wait(1)
    assert body["type"] == "failure" and "SLA missed" in body["message"] and run.name in body["message"]
    assert json.loads((project / "runs" / "alerts.json").read_text())[0]["rule"] == "sla"


def test_systemd_service_and_timer_parse_and_name_the_commands():
    service, timer = _unit("recsys-lab-retrain.service"), _unit("recsys-lab-retrain.timer")
    s = service["Service"]
    assert s["Type"] == "oneshot" and s["WorkingDirectory"] == "/srv/recsys"
    start, post = shlex.split(s["ExecStart"]), shlex.split(s["ExecStopPost"])
    assert start[0] == post[0] == "/srv/recsys/.venv/bin/recsys-lab"
    assert start[1:4] == ["retrain", "-c", "config.toml"] and "--promote" in start
    assert post[1:] == ["runs", "check", "-c", "config.toml"]
    t = timer["Timer"]
    assert t["OnCalendar"] == "*-*-* 03:00:00" and t["Persistent"] == "true"
    assert t["Unit"] == "recsys-lab-retrain.service" and timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.slow
def test_the_systemd_service_commands_run_in_its_working_directory(tmp_path):
    project = make_project(tmp_path)
    s = _unit("recsys-lab-retrain.service")["Service"]
    cwd = Path(_local(s["WorkingDirectory"], project))
    start = subprocess.run(shlex.split(_local(s["ExecStart"], project)), cwd=cwd, capture_output=True, text=True,
                           timeout=600)
    assert start.returncode == 0, start.stderr
    assert start.stdout.startswith("config: config.toml") and "promoted to production" in start.stdout
    post = subprocess.run(shlex.split(_local(s["ExecStopPost"], project)), cwd=cwd, capture_output=True, text=True,
                          timeout=300)
    assert post.returncode == 0 and post.stdout.startswith("ok: newest succeeded run"), post.stderr


class _Task:
    """Stand-in for Airflow's BashOperator: keeps its arguments and its downstream tasks."""

    made: list["_Task"] = []

    def __init__(self, **kwargs):
        self.kwargs, self.downstream = kwargs, []
        _Task.made.append(self)

    def __rshift__(self, other):
        self.downstream += other if isinstance(other, list) else [other]
        return other


class _Dag:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_airflow_dag_fails_on_exit_3_and_checks_after_the_retrain(monkeypatch):
    source = (EXAMPLES / "airflow_dag.py").read_text()
    tree = ast.parse(source)
    keywords = {kw.arg for node in ast.walk(tree) if isinstance(node, ast.Call) for kw in node.keywords}
    assert "skip_on_exit_code" not in keywords  # exit 3 fails the task: Airflow alerts on it, never *skipped*
    airflow = types.ModuleType("airflow")
    airflow.DAG = _Dag
    bash = types.ModuleType("airflow.providers.standard.operators.bash")
    bash.BashOperator = _Task
    for name in ("airflow.providers", "airflow.providers.standard", "airflow.providers.standard.operators"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "airflow", airflow)
    monkeypatch.setitem(sys.modules, "airflow.providers.standard.operators.bash", bash)
    _Task.made = []
    namespace: dict = {"__name__": "dag_under_test"}
    exec(compile(tree, str(EXAMPLES / "airflow_dag.py"), "exec"), namespace)  # noqa: S102 - our own example
    tasks = {t.kwargs["task_id"]: t for t in _Task.made}
    assert set(tasks) == {"retrain", "check", "show_production"}
    assert namespace["dag"].kwargs["default_args"]["email_on_failure"] is True
    retrain, check = tasks["retrain"], tasks["check"]
    assert " retrain --config config.toml --promote" in retrain.kwargs["bash_command"]
    assert "skip_on_exit_code" not in retrain.kwargs
    assert check.kwargs["bash_command"].endswith(" runs check --config config.toml")
    assert check.kwargs["trigger_rule"] == "all_done" and check in retrain.downstream
