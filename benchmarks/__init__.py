"""fedbearer benchmarks: what FederationAuth costs, measured against a floor in the same run.

Run from the repository root::

    python -m benchmarks            # everything, about 30 s on 2 cores
    python -m benchmarks --quick    # fewer rounds, for a smoke check
    python -m benchmarks hot_path login   # only some of them

Each benchmark measures fedbearer and its floor interleaved (A, B, B, A, ...) so that drift
on a shared machine hits both sides, and reports a ratio with its spread. Nothing here is
asserted in the test suite: timings belong here, tests check behaviour.
"""
