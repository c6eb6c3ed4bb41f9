"""A second asset (`scratch`) that the scheduler's orphan clean-up test un-references. The Airflow tests'
dags folder holds it beside examples/airflow/incremental_orders.py (tests/airflow/conftest.py)."""

from airflow.sdk import DAG, Asset, task

scratch = Asset("scratch", uri="s3://data/scratch/")

with DAG("scratch_writer", schedule=None, catchup=False) as scratch_dag:

    @task(outlets=[scratch])
    def write_scratch(**context):
        context["asset_state_store"].set("cursor", 1)

    write_scratch()
