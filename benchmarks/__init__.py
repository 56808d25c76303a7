"""Benchmark harness: the project's monthly load against the I/O floor and a pandas + Great
Expectations alternative, on national-scale synthetic extracts. Entry point: ``python -m benchmarks.run``.
See BENCHMARKS.md at the repository root."""
