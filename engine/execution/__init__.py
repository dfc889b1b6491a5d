"""Where a job runs. The daemon (``engine.daemon``) accepts jobs and hands them to ``queue``: one thread per
physical device takes that device's jobs one at a time and runs each in the device's worker process
(``job_process`` starts and watches it, ``python -m engine.execution.worker`` is its main: it calls the job
entry point ``engine.jobs.run_job`` and sends every event back on a pipe), or sends a run to a Ray cluster
through ``cluster`` (the daemon's side), whose driver is a child process (``cluster_bridge``, the only
module that imports ray) running each run as a Ray task (``cluster_task``) that streams its events back. A
``--devices N`` job is started as N rank processes by ``parallel_run``; what each rank does inside the
training loop (collectives, sharding) is ``engine.parallel``, and which devices this machine has is
``engine.devices``: both stay beside the loop, the tasks and validation, which use them, so this package
only ever points down at them. A study (``engine.daemon.studies``) is not placed here: its cells are
ordinary runs on these queues. Arrows point one way: the daemon imports ``queue``; nothing here imports
the daemon (its event hub is handed to ``queue.Queues``), and ``queue``, ``job_process`` and ``cluster``
import neither torch nor ray (the import-linter contracts in pyproject.toml hold it).
"""
