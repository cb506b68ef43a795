"""Loopback fakes of external systems and small sample services, for tests and benchmarks."""
