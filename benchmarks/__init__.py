"""eventstore's benchmarks (issue 5): `python -m benchmarks [--db sqlite|postgres|mysql] [--quick]`.

Measures eventstore against what Airflow users have (a plain upsert / primary-key select of JSON text,
through SQLAlchemy and through the raw driver) and against eventsourcing 9.5, on SQLite, PostgreSQL and
MariaDB, interleaved and repeated, and compares the medians with the targets (see docs/performance.md).

- `run`: the runner (`__main__`), sizes (`--quick`), the sections; `report`: tables and the JSON file;
  `targets`: the targets of issue 5; `stats`: interleaving, medians, paired ratios;
- `readwrite`: set and get vs the baselines; `peer` (+ `peer_model`): eventsourcing's save;
  `concurrency`: 1 vs 8 writer processes, 8 updaters of one key, a tailing reader that must miss nothing;
  `bulk`: 1M-event logs written straight into the es_* tables (why, and the invariants kept, are in its
  docstring); `replay`: rebuild, history, as-of and compaction on them, and the latency of writes
  while compaction runs;
- `markdown`: a results file as Markdown; `databases`: creating and reaching the benchmark databases;
- `airflow`: "Inside Airflow", run apart in the Airflow venv (`$py -m benchmarks.airflow`, `make bench`):
  the Execution API with `EventStoreBackend` against Airflow's `MetastoreBackend`; never imported here.
"""
