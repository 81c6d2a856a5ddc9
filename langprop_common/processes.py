"""Process lifetimes: a process that ends when another one does."""
from __future__ import annotations

import os
import select
import signal
import threading

__all__ = ["die_with"]


def die_with(pid: int) -> None:
    """SIGKILL this process when process ``pid`` (not necessarily its parent) ends.

    For a process whose parent outlives the one that matters: a forkserver's
    child, whose forkserver stays up as long as any of its children does. A
    daemon thread waits on a pidfd of ``pid`` (Linux >= 5.3); the process's
    own children, tied to it with ``PR_SET_PDEATHSIG`` (the sandbox's workers
    are), follow it.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        os.kill(os.getpid(), signal.SIGKILL)
        return

    def wait() -> None:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.poll()
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=wait, name=f"die-with-{pid}", daemon=True).start()
