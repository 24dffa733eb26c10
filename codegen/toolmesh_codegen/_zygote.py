"""The sandbox's zygote: ``python -I -m toolmesh_codegen._zygote`` inside the jail.

It pays the interpreter's start-up and imports once, then forks one fresh process
per run, so every program runs in a process of its own that no earlier program
touched, for about the cost of a ``fork``. The zygote itself never runs a program.

Its standard input is a ``SOCK_SEQPACKET`` control socket to the host, one message
per request:

* ``spawn MEMORY_BYTES CPU_S`` with a socket passed alongside (``SCM_RIGHTS``): fork a
  child that confines itself (``_confine``) and serves one run on that socket; the
  zygote answers ``pid PID``.
* ``kill PID``: end that child now (the host's deadline passed, or the run is over).

At start it answers ``ready``. When the host closes the socket the zygote exits, and
the jail's pid namespace takes every child with it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import sys
from typing import Any

from toolmesh_codegen import _child
from toolmesh_codegen._confine import ChildLimits, build_filter, confine


def _fork_child(
    control: socket.socket, run_socket: socket.socket, limits: ChildLimits, rules: Any
) -> int:
    pid = os.fork()
    if pid:
        return pid
    try:
        gc.disable()  # one run, then _exit: a collection would only copy shared pages
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        control.close()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # nothing a library prints reaches anyone
            os.dup2(devnull, fd)
        keep = run_socket.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, 1 << 16)
        _child.serve_one(run_socket, lambda: confine(limits, rules))
    finally:
        os._exit(70)


def main() -> None:
    control = socket.socket(fileno=os.dup(0))
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    rules = build_filter()  # built once; fails here, loudly, without libseccomp
    # Everything imported so far is shared with every child copy-on-write. Moving it
    # out of the collector's reach (and not collecting in the short-lived children)
    # keeps a child from touching, and so copying, the zygote's pages just to scan them.
    gc.freeze()
    control.send(b"ready")
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 256, 1)
        except ConnectionError:
            return
        if not message:
            return
        words = message.decode().split()
        if words[:1] == ["spawn"] and len(words) == 3 and len(fds) == 1:
            run_socket = socket.socket(fileno=fds[0])
            limits = ChildLimits(memory_bytes=int(words[1]), cpu_s=int(words[2]))
            pid = _fork_child(control, run_socket, limits, rules)
            run_socket.close()
            control.send(f"pid {pid}".encode())
        elif words[:1] == ["kill"] and len(words) == 2:
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(words[1]), signal.SIGKILL)
        else:
            for fd in fds:
                os.close(fd)
            print(f"toolmesh zygote: unknown request {message[:80]!r}", file=sys.stderr)


if __name__ == "__main__":
    main()
