"""Talking to the engine daemon, one module per job:

- ``process``: start, stop and inspect the detached daemon (``python -m engine.daemon``);
- ``sync``: one blocking request per connection (``engine status``), and ``run --engine``'s
  submit-and-follow;
- ``async_client``: the asyncio connection the TUI keeps (requests, subscriptions, heartbeat);
- ``errors``: what an error reply becomes.

The live event source built on the async client is ``workbench.sources.LiveSource``. Stdlib and
``sessions`` only: nothing of ``engine`` is imported, the daemon runs in its own process.
"""
