"""The engine daemon, by job: ``server`` (lifecycle and accept loop) -> ``connection`` (one client)
-> ``ops`` (one handler per request op) -> ``hub`` (event fan-out to subscribers) and ``studies`` (studies
as jobs: their cells queued as runs). Where a job runs (the per-device queues, the worker processes, the
Ray cluster) is ``engine.execution``. Run it with ``python -m engine.daemon``."""
