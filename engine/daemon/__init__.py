"""The engine daemon, by job: ``server`` (lifecycle and accept loop) -> ``connection`` (one client)
-> ``ops`` (one handler per request op) -> ``queue`` (per-device job queues) and ``hub`` (event
fan-out to subscribers). Run it with ``python -m engine.daemon``."""
