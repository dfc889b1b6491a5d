"""`mmul-workbench study ... --engine`: the study is an engine job (engine/daemon/studies.py). The must-holds of
issue 23: the engine's status lists it; killing the CLI client leaves it running; `engine stop` and the same
command again run only the cells that had not finished. One real engine on clip-tiny / shapes-tiny, one seed,
neggrad then ft with the shared cached originals; every wait is on an event the engine sends."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess

from conftest import cli, cli_env, link_shared_originals, until

# neggrad first (it finishes), then ft: its 4 steps (50 Df pairs in batches of 16) each train on a retain batch
# of 64, so `engine stop` sent at its first step finds it training
ARGS = ["--methods", "neggrad,ft", "--seeds", "42", "--model", "clip-tiny", "--data", "shapes-tiny", "--delete", "10",
        "--epochs", "1", "--device", "cpu"]


async def test_a_study_runs_in_the_engine_outlives_its_client_and_resumes_after_engine_stop(tmp_path):
    from workbench.cli_study import plan_from_args
    from workbench.client.async_client import EngineClient
    from workbench.client.process import engine_status, start_engine, stop_engine

    home = tmp_path / "home"
    link_shared_originals(home)
    study_id = plan_from_args(ARGS).id
    await asyncio.to_thread(start_engine, home)
    client = subprocess.Popen(cli("study", *ARGS, "--engine", "--json"), env=cli_env(home),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def listed() -> bool:
            return study_id in (engine_status(home).get("studies") or {})
        await until(listed, timeout=60)
        client.send_signal(signal.SIGKILL)
        assert await asyncio.to_thread(client.wait, 30) == -signal.SIGKILL

        # the client is gone; the study goes on in the engine: follow it until ft takes its first step
        async with EngineClient(home) as engine:
            info = await engine.study_status(study_id)
            assert engine_status(home)["studies"][study_id]["state"] == "running"
            while info["cells"][1]["session"] is None:
                info = await engine.study_status(study_id, after=info["version"])
            assert info["cells"][0]["state"] == "finished" and info["state"] == "running"
            async for event in engine.subscribe(info["cells"][1]["session"]):
                if event["kind"] == "step":
                    break
        stopped = await asyncio.to_thread(stop_engine, home)
        assert stopped["was_running"] and not stopped["killed"]

        record = json.loads((home / "studies" / f"{study_id}.json").read_text())
        before = {cell["method"]: cell for cell in record["cells"]}
        assert before["neggrad"]["state"] == "finished" and before["ft"]["state"] == "cancelled"

        # the same command again: the engine starts, runs ft alone, and the study's document comes back
        again = await asyncio.to_thread(subprocess.run, cli("study", *ARGS, "--engine", "--json"), env=cli_env(home),
                                        capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stderr[-2000:]
        assert f"study {study_id}: 1 of 2 runs to go" in again.stderr
        document = json.loads(again.stdout)
        after = {cell["method"]: cell for cell in document["cells"]}
        assert document["study"] == study_id and all(cell["state"] == "finished" for cell in after.values())
        assert after["neggrad"]["session"] == before["neggrad"]["session"]    # finished: kept, not run again
        assert after["ft"]["session"] != before["ft"]["session"]              # cancelled: run again
        sessions = {p.name for p in (home / "sessions").iterdir() if p.is_dir()}
        assert sessions == {before["neggrad"]["session"], before["ft"]["session"], after["ft"]["session"]}
        assert set(document["methods"]) == {"ft", "neggrad"}
    finally:
        if client.poll() is None:
            client.kill()
        await asyncio.to_thread(stop_engine, home)
