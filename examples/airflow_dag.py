"""Example Airflow DAG: the nightly retrain through the recsys-lab CLI (copy into your Airflow ``dags/`` folder).

The task runs ``recsys-lab retrain``, so it gets everything a scheduled run needs: the retrain lock (``--wait``:
a retrain still running from the night before is waited for, then this one fails clearly), the time budget
(``--max-minutes``), the run folder with ``run.json``, drift against production, the metric gate and promotion
(``--promote``), and the alerts of the project's ``[alerts]`` section. Exit codes tell Airflow what happened (see
``recsys_lab/cli/exits.py``): 0 promoted or passed, 3 the gate refused the run, 4 over budget, 5 another retrain
held the lock, 143 Airflow stopped the task (SIGTERM: the run is recorded ``failed`` with the signal named). Every
non-zero code fails the task, so Airflow alerts on it (``email_on_failure``, ``on_failure_callback``): a refused gate
means production did not move, and a week of refusals must not look like a week of success. ``check`` runs after
the retrain whatever its outcome (``trigger_rule="all_done"``): ``recsys-lab runs check`` fails (exit 6, and sends
the ``sla`` alert) when no run succeeded within ``alerts.sla`` or production is older than
``alerts.max_production_age``.

Set ``PROJECT`` to a folder made by ``recsys-lab init`` (or a clone), and ``RECSYS_LAB`` to the ``recsys-lab``
executable of the environment it was installed into. This file is an example: recsys_lab does not depend on
Airflow and never imports it. ``tests/ops/test_recipes.py`` loads it against stand-ins for the two Airflow imports
(Airflow is not installed in the tests) and checks the three tasks, their commands and that no exit code is skipped;
the two-task version before it was loaded with Airflow 3.3.2's ``DagBag``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

PROJECT = "/srv/recsys"  # holds config.toml, notebooks/, runs/, warehouse/
RECSYS_LAB = "/srv/recsys/.venv/bin/recsys-lab"

with DAG(
    dag_id="recsys_lab_nightly_retrain",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0, "execution_timeout": timedelta(hours=1), "email_on_failure": True},
    tags=["recsys_lab"],
) as dag:
    retrain = BashOperator(
        task_id="retrain",
        cwd=PROJECT,
        bash_command=f"{RECSYS_LAB} retrain --config config.toml --promote --max-minutes 45 --wait 600",
        # every non-zero exit fails the task, 3 (the gate refused the run) included: a failure Airflow alerts on
    )

    check = BashOperator(
        task_id="check",
        cwd=PROJECT,
        bash_command=f"{RECSYS_LAB} runs check --config config.toml",
        trigger_rule="all_done",  # also after a failed retrain: it is the SLA and staleness check
    )

    show = BashOperator(
        task_id="show_production",
        cwd=PROJECT,
        bash_command=f"{RECSYS_LAB} runs show production",
    )

    retrain >> [check, show]
