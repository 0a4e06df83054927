"""``gatectl fallback`` says "fell back" only once traffic moved, not when the router refused.

A real ``gatectl run`` process whose ``file`` actuator cannot write the
traffic file (its directory is a regular file): the controller records the
fallback with "traffic not moved", and the waiting command must not confirm
it. Once the router can be written, the next pass moves traffic and the
status says who fell the gate back.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
from pathlib import Path

from engine.test_state_corruption import seed
from support.filemode import gatectl, start_controller, stop, traffic_share, wait

ME = pwd.getpwuid(os.getuid()).pw_name
NOWHERE = "http://127.0.0.1:9"  # the gate is paused: Prometheus is never asked


def status(state: Path) -> dict[str, object]:
    done = gatectl("status", "--state-file", str(state), "-o", "json")
    assert done.returncode == 0, done.stderr
    (gate,) = json.loads(done.stdout)
    return dict(gate["status"])


def test_a_fallback_whose_traffic_did_not_move_is_not_confirmed(tmp_path: Path) -> None:
    setup = seed(tmp_path, "step2")
    router = setup.traffic.parent
    process = start_controller(setup.policies, setup.state, NOWHERE)
    try:
        wait(lambda: status(setup.state).get("phase") == "Paused", timeout=30, what="a pass")
        shutil.rmtree(router)  # the router's directory goes (a full disk, a bad mount)
        router.write_text("not a directory\n")
        done = gatectl(
            "fallback", "triage", "--reason", "router down", "--state-file", str(setup.state)
        )
        assert done.returncode == 3, done.stdout + done.stderr
        assert done.stdout == ""
        assert done.stderr.startswith(f"gatectl: fallback of default/triage recorded (by {ME})")
        assert str(status(setup.state)["message"]).startswith("traffic not moved: file ")

        router.unlink()
        router.mkdir()
        wait(lambda: traffic_share(setup.traffic) == 0.0, timeout=30, what="a later pass")
        wait(
            lambda: "message" not in status(setup.state),
            timeout=30,
            what="the traffic error cleared",
        )
        stopped = status(setup.state)
        assert stopped["humanFallback"]["by"] == ME  # type: ignore[index]
        assert (stopped["share"], stopped["fallenBack"]) == (0.0, True)
    finally:
        stop(process)
