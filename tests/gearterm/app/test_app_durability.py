"""Killing the app mid-reply (SIGKILL: no cleanup at all) loses nothing but the reply in flight.

The app runs in a child process (durability_child.py) on the scripted stand-in backend, which
can hold a reply half-way on cue; the store it writes is the real one."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

CHILD = Path(__file__).with_name("durability_child.py")


def test_sigkill_mid_reply_leaves_earlier_messages_intact_and_the_database_sound(tmp_path):
    child = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while not line.startswith("MID-REPLY"):
            assert time.monotonic() < deadline and child.poll() is None, "the app never got mid-reply"
            line = child.stdout.readline()
        in_flight = int(line.split()[1])
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()

    db = sqlite3.connect(tmp_path / "history.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    messages = db.execute("SELECT id, role, content, complete, end_reason FROM messages ORDER BY id").fetchall()
    assert [(role, complete) for _, role, _, complete, _ in messages] == [
        ("user", 1), ("assistant", 1), ("user", 1), ("assistant", 0)
    ]
    assert messages[0][2] == "first question" and messages[2][2] == "second question"
    first_reply, second_reply = messages[1], messages[3]
    assert first_reply[4] == "length" and second_reply[0] == in_flight and second_reply[4] is None

    def trace(message_id):
        return db.execute("SELECT text FROM tokens WHERE message_id = ? ORDER BY position", (message_id,)).fetchall()

    assert len(trace(first_reply[0])) == 20 and "".join(t for (t,) in trace(first_reply[0])) == first_reply[2]
    # The reply in flight kept what was saved before the kill, text and trace in step.
    assert len(trace(in_flight)) >= 10 and "".join(t for (t,) in trace(in_flight)) == second_reply[2]
