"""The stuck-subscriber probe (issue 22): what clients that subscribe and never read cost the engine.

Writes one finished session of --events events, starts a real engine daemon on a temp $MMUL_HOME, opens
--connections connections that each say hello and send --subscribes `subscribe` for that session from
seq 0 and then never read, and prints the daemon's memory (VmRSS now, VmHWM its peak) and how long a
fresh client's `list` takes while they hang there. The goal: 20 x 20 on a 100k-event session keeps the
daemon under 200 MiB and `list` under 0.5 s. With --wait-cut it also times how long the engine takes to
cut the stuck connections off (its stall timeout).

    .venv/bin/python bench/bench_backpressure.py [--events 100000] [--connections 20] [--subscribes 20]
    .venv/bin/python bench/bench_backpressure.py --code /path/to/other/checkout   # the same probe, other code
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sessions import protocol as P  # noqa: E402
from sessions.store import SessionStore  # noqa: E402
from workbench.client.process import start_engine, stop_engine  # noqa: E402
from workbench.client.sync import call  # noqa: E402

SPEC = {"method": "multidelete", "model": "clip-tiny", "data": "shapes-tiny"}


def write_session(home: Path, events: int, segment_size: int | None = None) -> str:
    """One finished session of ``events`` events shaped like a run's (steps with four losses, evals)."""
    store = SessionStore(home, flush_interval=3600, **({"segment_size": segment_size} if segment_size else {}))
    writer = store.create(SPEC)
    step = 0
    while writer.last_seq < events - 2:
        x = 1.0 / (step + 1)
        writer.emit("step", step=step, phase="unlearn", lr=1e-4,
                    losses={"total": 3 * x, "modality_decoupling": x, "multimodal_knowledge_retention": 0.9 * x,
                            "unimodal_knowledge_retention": 1.1 * x})
        if step % 1000 == 999:
            writer.emit("eval", step=step, phase="unlearn", split="step", metrics={"df_dr_auc": 0.5 + x})
        step += 1
    writer.finish("finished", summary={"metrics": {"df_dr_auc": 0.5}})
    return writer.session_id


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def stuck_clients(paths: P.EnginePaths, session: str, connections: int, subscribes: int) -> list[socket.socket]:
    """Connections that say hello, subscribe ``subscribes`` times and then never read."""
    socks = []
    for _ in range(connections):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(paths.socket))
        requests = [P.hello_request(0)] + [{"id": n, "op": "subscribe", "session": session, "from_seq": 0}
                                           for n in range(1, subscribes + 1)]
        sock.sendall(b"".join(P.encode(r) for r in requests))
        socks.append(sock)
    return socks


def timed_list(paths: P.EnginePaths, tries: int = 5) -> list[float]:
    took = []
    for _ in range(tries):
        started = time.perf_counter()
        call(paths, "list", timeout=60)
        took.append(time.perf_counter() - started)
    return took


def settle(paths: P.EnginePaths, connections: int, timeout: float, fallback: float) -> str:
    """Wait until every stuck connection's reply and every subscription's send wait on the client (an engine
    that does not report waiting sends: ``fallback`` seconds). A connection's requests are answered in turn,
    so once a reply waits the rest of its subscribes stay unread in the socket."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = call(paths, "status", timeout=60)
        if "waiting_sends" not in status:
            time.sleep(fallback)
            return f"this engine does not report waiting sends: waited {fallback:g} s"
        if status["subscriptions"] >= connections and status["waiting_sends"] >= status["subscriptions"] + connections:
            return f"{status['subscriptions']} subscriptions and {connections} replies wait on the clients"
        time.sleep(0.1)
    return f"not settled after {timeout:g} s: {status['subscriptions']} subscriptions, {status['waiting_sends']} sends wait"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--subscribes", type=int, default=20, help="subscribe requests per connection")
    parser.add_argument("--code", type=Path, default=ROOT, help="the checkout whose engine to run")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait on an engine that does not "
                        "report waiting sends")
    parser.add_argument("--wait-cut", action="store_true", help="also time until the stuck clients are cut off")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)   # each figure as soon as it is measured
    with tempfile.TemporaryDirectory(prefix="mmul-bp-") as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        session = write_session(home, args.events)
        print(f"session {session}: {args.events:,} events written in {time.perf_counter() - started:.1f} s")
        env_path = f"{args.code}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
        os.environ["PYTHONPATH"] = env_path
        command = [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(args.code)!r}); "
                   "import engine.daemon.server as s; sys.exit(s.main())"]
        info = start_engine(home, timeout=60, command=command)
        paths = P.engine_paths(home)
        pid = int(info.get("pid") or call(paths, "status")["pid"])
        try:
            rss0, _ = memory_mib(pid)
            idle = timed_list(paths)
            print(f"engine {pid} ({args.code}): {rss0:.0f} MiB at rest; list {1000 * statistics.median(idle):.1f} ms")
            socks = stuck_clients(paths, session, args.connections, args.subscribes)
            print(f"{args.connections} connections x {args.subscribes} subscribes, never read: "
                  f"{settle(paths, args.connections, timeout=25, fallback=args.settle)}")
            rss, peak = memory_mib(pid)
            took = timed_list(paths)
            print(f"daemon memory: VmRSS {rss:.0f} MiB, peak VmHWM {peak:.0f} MiB (goal: under 200 MiB)")
            print(f"a fresh client's list: median {1000 * statistics.median(took):.1f} ms, "
                  f"max {1000 * max(took):.1f} ms over {len(took)} (goal: under 500 ms)")
            if args.wait_cut:
                cut_started = time.monotonic()
                while call(paths, "status", timeout=60)["connections"] > 1:
                    time.sleep(0.2)
                rss, peak = memory_mib(pid)
                print(f"the stuck connections were cut after {time.monotonic() - cut_started:.1f} s more; "
                      f"VmRSS then {rss:.0f} MiB")
            for sock in socks:
                sock.close()
        finally:
            stop_engine(home, timeout=30)


if __name__ == "__main__":
    main()
