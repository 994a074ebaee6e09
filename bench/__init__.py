"""Benchmarks: long measurements (speed, the default run's quality and memory), not run by the tests."""
