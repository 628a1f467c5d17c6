"""Run ComfyUI's main.py so that it dies with the process that started it, however that one ends.

`python parent_watch.py FD /path/to/main.py ARGS...` reads the pipe `FD` in a thread while main.py runs in
the main thread, in this same process (its exit code, signals and log are ComfyUI's own). The parent holds
the pipe's only write end and never writes: when the parent exits (cleanly, by SIGKILL, by the
out-of-memory killer) the kernel closes it, the read sees end-of-file, and this kills the process group,
which is ComfyUI and the helpers its custom nodes started (ComfyUI leads its own session). Linux's
PR_SET_PDEATHSIG would fire when the *thread* that forked ComfyUI exits, and ComfyUI is started from
short-lived threads; a pipe is closed only when the process is gone.

Standard library only: it runs under ComfyUI's interpreter (`COMFYUI_PYTHON`), not ours.
"""

import os
import runpy
import signal
import sys
import threading


def _watch(fd: int) -> None:
    while os.read(fd, 1):
        pass  # the parent never writes; only end-of-file ends the loop
    os.killpg(os.getpgrp(), signal.SIGKILL)


def main() -> None:
    # A process started in the background by a non-interactive shell inherits SIGINT as ignored, and
    # Python then leaves it ignored: ComfyUI would not stop when asked to (it stops on KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fd, main_py = int(sys.argv[1]), os.path.abspath(sys.argv[2])
    threading.Thread(target=_watch, args=(fd,), name="parent-watch", daemon=True).start()
    sys.argv = [main_py, *sys.argv[3:]]
    sys.path[0] = os.path.dirname(main_py)  # as `python main.py` would have it, not this file's folder
    runpy.run_path(main_py, run_name="__main__")


if __name__ == "__main__":
    main()
