"""Benchmarks of the webhook against floors measured in the same run: ``python -m benchmarks``.

See BENCHMARKS.md for what each measures, its floor, and the latest full run.
"""
