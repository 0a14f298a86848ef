"""Example Airflow DAG for the nightly retrain (copy into your Airflow ``dags/`` folder; not imported by
recsys_lab itself, which does not depend on Airflow).

Two equivalent tasks are shown; use one:
- ``retrain_cli`` calls the CLI: lock, time budget, run folder, metric gate and promotion included.
- ``retrain_papermill`` uses Airflow's ``PapermillOperator`` on the same notebook (the executed notebook is
  the report, but gating and promotion are then yours: follow it with ``recsys-lab runs promote``).
Airflow docs: https://airflow.apache.org/docs/apache-airflow-providers-papermill/stable/operators.html
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.papermill.operators.papermill import PapermillOperator

PROJECT = "/srv/recsys_lab"  # the clone, with its .venv

with DAG(
    dag_id="recsys_lab_nightly_retrain",
    schedule="0 3 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 0, "execution_timeout": timedelta(hours=1)},
) as dag:
    retrain_cli = BashOperator(
        task_id="retrain_cli",
        bash_command=f"cd {PROJECT} && .venv/bin/recsys-lab retrain --promote --max-minutes 45 --wait 600",
    )

    retrain_papermill = PapermillOperator(
        task_id="retrain_papermill",
        input_nb=f"{PROJECT}/notebooks/retrain.ipynb",
        output_nb=f"{PROJECT}/runs/airflow-{{{{ ts_nodash }}}}/retrain.ipynb",
        parameters={"config": {"model": {"epochs": 40}}, "run_dir": f"{PROJECT}/runs/airflow-{{{{ ts_nodash }}}}"},
        kernel_name="python3",
    )
