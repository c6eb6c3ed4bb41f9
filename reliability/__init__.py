"""The reliability runs of issue 17 (`make reliability`; docs/reliability.md publishes their figures).

One module per run, each with `main(argv) -> int` (0 when every check held) and a short version that
`make test` runs through tests/:

- `reliability.kill`: writers and REST servers SIGKILLed at random moments, then every invariant checked;
- `reliability.restarts`: the database restarted (or its disk made full or read-only) mid-load;
- `reliability.load`: the REST server under concurrent clients for minutes: latency, req/s, errors, memory.

Results go to reliability/results/<run>-<time>.json (not committed) as well as to stdout.
"""
