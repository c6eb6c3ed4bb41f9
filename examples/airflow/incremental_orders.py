"""The watermark example of Airflow's asset state store documentation (`incremental_orders` /
`load_new_orders`), as written there, with a stand-in source: each run finds the orders of one more day.

`make airflow-demo` runs it twice in a throwaway Airflow (examples/airflow/demo.py); the Airflow tests
(tests/airflow/) run this same file. Deployed as is, in Airflow's dags folder, it runs daily.
"""

from airflow.sdk import DAG, Asset, task

orders = Asset("orders", uri="s3://data/orders/")

# The stand-in source: the orders "created" after each watermark, one day per run, then none.
NEXT_DAY = {
    "1970-01-01T00:00:00Z": "2024-06-01T00:00:00Z",
    "2024-06-01T00:00:00Z": "2024-06-02T00:00:00Z",
    "2024-06-02T00:00:00Z": "2024-06-03T00:00:00Z",
}


def fetch_orders_since(watermark):
    created = NEXT_DAY.get(watermark)
    return [] if created is None else [{"id": 1, "created_at": created}]


def upload_to_warehouse(rows):
    pass  # the stand-in warehouse


with DAG("incremental_orders", schedule="@daily", catchup=False) as dag:

    @task(inlets=[orders], outlets=[orders])
    def load_new_orders(**context):
        asset_state_store = context["asset_state_store"]  # single-inlet shorthand

        # Read the last watermark, default to epoch if first run.
        watermark = asset_state_store.get("watermark", default="1970-01-01T00:00:00Z")

        # Fetch only rows created after the watermark.
        rows = fetch_orders_since(watermark)
        if not rows:
            return

        upload_to_warehouse(rows)

        # Advance the watermark to the latest row seen.
        new_watermark = max(r["created_at"] for r in rows)
        asset_state_store.set("watermark", new_watermark)

    load_new_orders()
