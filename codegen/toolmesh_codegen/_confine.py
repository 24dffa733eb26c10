"""What a forked sandbox child does to itself before it reads a program: rlimits, no
core dumps, not dumpable, ``no_new_privs`` and a seccomp allow-list.

The namespaces, the unprivileged uid and the read-only filesystem view come from
the jail the zygote was started in (``_jail``); this module closes what a process
can still ask the kernel for. The seccomp filter is an allow-list: every system call
not named here fails with ``EPERM``, so new kernel interfaces stay closed. The list
is what an asyncio interpreter needs to compute, allocate, talk over the socket it
was handed and read (never write) files of its view; ``socket``, ``connect``,
``execve``, ``fork``, ``ptrace``, ``mount``, ``unshare``, ``setuid``, ``kill`` and
``bpf`` are absent.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
from dataclasses import dataclass
from typing import Any

__all__ = ["ChildLimits", "build_filter", "confine"]

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_DUMPABLE = 4

_ALLOWED_SYSCALLS = (
    # memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "membarrier",
    # the socket the host handed over, and files of the read-only view
    "read", "readv", "pread64", "write", "writev", "recvfrom", "recvmsg", "sendto",
    "sendmsg", "close", "fstat", "newfstatat", "statx", "lseek", "getdents64",
    "readlink", "readlinkat", "getcwd", "fcntl", "dup", "shutdown", "getsockopt",
    "access", "faccessat", "faccessat2",
    # event loop, time, signals, threads' bookkeeping
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "poll", "ppoll",
    "select", "pselect6", "clock_gettime", "clock_getres", "clock_nanosleep",
    "nanosleep", "gettimeofday", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
    "sigaltstack", "futex", "set_robust_list", "rseq", "sched_yield",
    "sched_getaffinity", "getrandom",
    # identity and limits, read only
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
    "getgroups", "getrusage", "sysinfo", "uname",
    "exit", "exit_group",
)  # fmt: skip

_FIONBIO = 0x5421
_FIOCLEX = 0x5451
_FIONCLEX = 0x5450
_TCGETS = 0x5401
_CLONE_THREAD = 0x00010000


@dataclass(frozen=True, slots=True)
class ChildLimits:
    """Resource limits of one run's process.

    Args:
        memory_bytes: Address space the program may add to what the process uses.
        cpu_s: CPU seconds (the kernel kills the process past them).
        open_files: File descriptors.
    """

    memory_bytes: int
    cpu_s: int
    open_files: int = 64


def build_filter() -> Any:
    """The seccomp allow-list as a ``pyseccomp.SyscallFilter`` (not loaded yet).

    Built once in the zygote; every forked child loads it.
    """
    import pyseccomp as seccomp

    rules = seccomp.SyscallFilter(defaction=seccomp.ERRNO(errno.EPERM))
    for name in _ALLOWED_SYSCALLS:
        rules.add_rule(seccomp.ALLOW, name)
    # open files read-only: no O_WRONLY, O_RDWR, O_CREAT or O_TRUNC
    writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
    rules.add_rule(seccomp.ALLOW, "openat", seccomp.Arg(2, seccomp.MASKED_EQ, writes, 0))
    for request in (_FIONBIO, _FIOCLEX, _FIONCLEX, _TCGETS):
        rules.add_rule(seccomp.ALLOW, "ioctl", seccomp.Arg(1, seccomp.EQ, request))
    # threads only (RLIMIT_NPROC stops those too), never new processes
    rules.add_rule(
        seccomp.ALLOW, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, _CLONE_THREAD, _CLONE_THREAD)
    )
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # glibc falls back to clone
    # reading limits is fine; prlimit64 with a new limit (arg 2 non-NULL) is not
    rules.add_rule(seccomp.ALLOW, "prlimit64", seccomp.Arg(2, seccomp.EQ, 0))
    return rules


def _virtual_memory_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def confine(limits: ChildLimits, rules: Any) -> None:
    """Apply every limit to this process, irreversibly, then load ``rules``.

    Raises:
        OSError: a limit could not be applied (the child must not run anything then).
    """
    address_space = _virtual_memory_bytes() + limits.memory_bytes
    for which, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_CPU, limits.cpu_s),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (value, value))
    libc = ctypes.CDLL(None, use_errno=True)
    for option in ((_PR_SET_DUMPABLE, 0), (_PR_SET_NO_NEW_PRIVS, 1)):
        if libc.prctl(option[0], option[1], 0, 0, 0) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"prctl({option[0]}) failed: {os.strerror(code)}")
    rules.load()
