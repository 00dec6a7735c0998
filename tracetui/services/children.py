"""What the model's and the tracer's child processes share: starting them safely from inside a
running app, ending with their parent, and being stopped (asked, then terminated, then killed)."""

from __future__ import annotations

import os
import threading
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess


def die_with_parent(interval: float = 0.5) -> None:
    """End this child when its parent process is gone, however it went (even SIGKILL): a daemon
    thread watches the parent's pid (an orphan is re-parented). Not PR_SET_PDEATHSIG: that one
    fires when the parent *thread* that started the child ends, and children are started from
    short-lived worker threads."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def start_resource_tracker() -> None:
    """Start multiprocessing's resource tracker now, from a normal process state. Spawning
    starts it on first use and hands it stderr's descriptor; inside a running Textual app
    stderr is Textual's capture, without a real descriptor, and the spawn fails."""
    from multiprocessing import resource_tracker

    try:
        resource_tracker.ensure_running()
    except (OSError, ValueError):
        pass  # the spawn that follows reports what is wrong


def quiet_stderr() -> None:
    """llama.cpp logs to fd 2, which is the terminal the UI draws on: the child's goes nowhere."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, 2)
        os.close(fd)
    except OSError:
        pass


def stop_child(proc: BaseProcess | None, conn: Connection | None) -> None:
    """Ask a child to quit, then terminate it, then kill it (a second each), and close its pipe."""
    if conn is not None:
        try:
            conn.send(("quit",))
        except (OSError, ValueError):
            pass
    if proc is not None:
        proc.join(1.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(1.0)
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)
    if conn is not None:
        conn.close()
