"""The benchmarks, as a package so the scripts can share bench.cohorts."""
