"""kproxy benchmarks. Each module `bench/<name>.py` (not starting with "_") is one benchmark:
runnable alone as `python -m bench.<name>`, it defines `main(argv=None) -> int`, measures kproxy
and its comparison point in the same run, prints a small table and asserts no thresholds.
`python -m bench` runs them all (see bench/__main__.py)."""
