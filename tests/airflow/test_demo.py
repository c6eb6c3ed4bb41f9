"""`make airflow-demo` (examples/airflow/demo.py) runs, in its own process and Airflow home, and tells its
story: the DAG's two runs (watcher, as Airflow attributes dag.test()'s writes), alice's REST change, the
restore to the first run's value, and the kept home."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.airflow.conftest import EXAMPLES


def test_the_airflow_demo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # The environment keeps this session's AIRFLOW__... variables: the demo must ignore them.
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "demo.py"), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert done.stderr == "", done.stderr[-3000:]  # a newcomer's first minute: no warnings, no logs
    url = f"sqlite:///{home}/airflow.db"
    assert f"$ eventstore --url {url} history orders --key watermark" in out
    # The history table, then the restore's: each row's position, value and writer.
    rows = re.findall(
        r'^│ (\d+) +│.*│ set +│ watermark +│ ("[^"]*") +│.*│ ([a-z]+(?: \(\w+\))?) +│$', out, re.M
    )
    assert rows[:3] == [
        ("2", '"2024-06-01T00:00:00Z"', "watcher"),
        ("3", '"2024-06-02T00:00:00Z"', "watcher"),
        ("4", '"2024-07-01T00:00:00Z"', "api (alice)"),
    ]
    assert f"$ eventstore --url {url} restore orders --position 2" in out
    assert "restore of orders made 1 change(s)" in out
    assert rows[3][:2] == ("5", '"2024-06-01T00:00:00Z"') and rows[3][2].startswith("cli (")
    assert f'$ eventstore --url {url} get orders watermark\n"2024-06-01T00:00:00Z"\n' in out
    assert f"The Airflow home is kept: {home}" in out
    assert (home / "airflow.db").is_file() and (home / "dags" / "incremental_orders.py").is_file()
    seconds = int(re.search(r"^Done in (\d+)s\.", out, re.M).group(1))  # type: ignore[union-attr]
    print(f"airflow demo: {seconds}s")
