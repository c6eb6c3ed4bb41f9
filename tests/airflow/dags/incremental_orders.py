"""The seed's watermark example (`incremental_orders` / `load_new_orders`), with a fake source, and a
second asset (`scratch`) that the scheduler's orphan clean-up test un-references."""

from airflow.sdk import DAG, Asset, task

orders = Asset("orders", uri="s3://data/orders/")
scratch = Asset("scratch", uri="s3://data/scratch/")

# Orders "created" after each watermark: each run advances by one day.
NEXT_DAY = {
    "1970-01-01T00:00:00Z": "2024-06-01T00:00:00Z",
    "2024-06-01T00:00:00Z": "2024-06-02T00:00:00Z",
    "2024-06-02T00:00:00Z": "2024-06-03T00:00:00Z",
}


def fetch_orders_since(watermark):
    created = NEXT_DAY.get(watermark)
    return [] if created is None else [{"id": 1, "created_at": created}]


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

        # Advance the watermark to the latest row seen.
        asset_state_store.set("watermark", max(r["created_at"] for r in rows))

    load_new_orders()


with DAG("scratch_writer", schedule=None, catchup=False) as scratch_dag:

    @task(outlets=[scratch])
    def write_scratch(**context):
        context["asset_state_store"].set("cursor", 1)

    write_scratch()
