"""How a launched node stays tied to its launcher, whatever happens to either.

A robot must never keep driving on orphaned processes: if ``navkit launch`` is killed
(SIGKILL, a closed terminal's SIGHUP, an OOM kill), the nodes it started must stop too,
and if one node hangs (SIGSTOP, a deadlocked executor) the launcher must notice and
stop the launch. Two mechanisms, both set up through the environment so that nodes run
unchanged under ``ros2 launch`` (where neither variable is set and nothing happens):

* **Death signal.** The launcher sets ``NAVKIT_LAUNCHER_PID``; the node asks Linux to
  send it SIGTERM when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and exits at once
  if the parent is already gone (the race between fork and prctl).
* **Heartbeat pipe.** The launcher passes the write end of a pipe in
  ``NAVKIT_HEARTBEAT_FD``; the node writes one byte every ``HEARTBEAT_PERIOD_S`` from a
  steady-clock timer *in its executor*, so a stopped process or a stuck callback stops
  the beats. A write that fails with a broken pipe means the launcher is gone (the
  portable twin of the death signal). The launcher reads the other end and treats a node
  silent for longer than its heartbeat timeout, after its first beat, as failed.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys

LAUNCHER_PID_ENV = "NAVKIT_LAUNCHER_PID"
HEARTBEAT_FD_ENV = "NAVKIT_HEARTBEAT_FD"
HEARTBEAT_PERIOD_S = 0.5
"""How often a node beats; the launcher's timeout should be several periods."""
_PR_SET_PDEATHSIG = 1


def die_with_launcher() -> None:
    """In a launched node: receive SIGTERM when the launcher dies; exit now if it already has."""
    raw = os.environ.get(LAUNCHER_PID_ENV)
    if not raw or not raw.isdigit():
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            print(f"navkit: cannot set the parent-death signal ({os.strerror(ctypes.get_errno())}); "
                  "relying on the heartbeat pipe", file=sys.stderr)
    if os.getppid() != int(raw):
        print("navkit: the launcher is gone; not starting", file=sys.stderr)
        os._exit(1)


class HeartbeatWriter:
    """The node's end of the heartbeat pipe (inactive when the launcher gave none)."""

    def __init__(self) -> None:
        raw = os.environ.get(HEARTBEAT_FD_ENV, "")
        self.fd: int | None = int(raw) if raw.isdigit() else None
        if self.fd is not None:
            try:
                os.set_blocking(self.fd, False)
            except OSError:
                self.fd = None

    @property
    def active(self) -> bool:
        return self.fd is not None

    def beat(self) -> bool:
        """Write one beat; False when the launcher has gone (the pipe is broken)."""
        if self.fd is None:
            return True
        try:
            os.write(self.fd, b".")
        except BlockingIOError:
            pass  # the launcher is slow to read: it is alive
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                return False
            raise
        return True


class HeartbeatReader:
    """The launcher's end for one child: when did it last beat?"""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self.last_beat: float | None = None

    def child_env(self) -> dict[str, str]:
        return {HEARTBEAT_FD_ENV: str(self.write_fd), LAUNCHER_PID_ENV: str(os.getpid())}

    def after_spawn(self) -> None:
        """Close the launcher's copy of the write end, so the pipe breaks only with the child."""
        os.close(self.write_fd)

    def poll(self, now: float) -> None:
        """Drain whatever the child wrote; any byte is a beat."""
        try:
            while os.read(self.read_fd, 4096):
                self.last_beat = now
        except BlockingIOError:
            pass

    def silent_for(self, now: float) -> float:
        """Seconds since the last beat (0 before the first one: a node may take long to start)."""
        return 0.0 if self.last_beat is None else now - self.last_beat

    def close(self) -> None:
        try:
            os.close(self.read_fd)
        except OSError:
            pass
