"""Cog's worker ends when Cog's server is gone, and ComfyUI with it.

coglet runs the predictor in a worker process of its own. Sent SIGTERM while the worker's setup is still
under way (a container stopped while the model starts), coglet's server exits at once and leaves the
worker running: setup goes on for nobody, ComfyUI holding its port and memory, until it ends by itself.
A thread here waits on a pidfd of the worker's parent; when that process is gone it ends this one at
once, which closes ComfyUI's lifeline pipe (`comfyrun/parent_watch.py`), so ComfyUI and its helpers go
too. A normal stop never gets here: coglet stops its worker before it exits.
"""

from __future__ import annotations

import logging
import os
import select
import threading

__all__ = ["exit_with_parent"]

logger = logging.getLogger(__name__)


def exit_with_parent() -> None:
    """Start the watch (Linux 5.3+: `pidfd_open`; elsewhere nothing is watched)."""
    parent = os.getppid()
    try:
        fd = os.pidfd_open(parent)
    except (AttributeError, OSError) as exc:
        logger.debug("not watching the parent process %d: %s", parent, exc)
        return

    def watch() -> None:
        select.select([fd], [], [])
        logger.warning("Cog's server (pid %d) is gone: this worker ends, and ComfyUI with it", parent)
        os._exit(1)

    threading.Thread(target=watch, name="server-watch", daemon=True).start()
