"""The process jail of the sandbox (host side): the command that starts the zygote in
new namespaces as an unprivileged user, and the probe that says whether this kernel
can do that at all.

The zygote runs under ``bwrap`` (bubblewrap, started as root so it can mount), in
new pid, network, mount, ipc and uts namespaces, with a filesystem view of read-only
binds of the interpreter, the virtual environment and the two packages, a private
``/proc`` and a minimal ``/dev``; nothing is writable. Inside it ``setpriv`` drops
to uid/gid 65534 with no supplementary groups, an empty capability bounding set and
``no_new_privs``, and ``unshare --user`` puts the process in a user namespace of
its own (the other namespaces belong to the host's, so no capability gained in it
applies to them). Each run's process is then forked from that zygote and confines
itself further (``_confine``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "FORCE_UNAVAILABLE_ENV",
    "IsolationStatus",
    "isolation_status",
    "jail_command",
]

#: Test-only: when set (to a reason), the probe reports isolation as unavailable, the
#: way it would on a kernel without user namespaces or seccomp.
FORCE_UNAVAILABLE_ENV = "TOOLMESH_SANDBOX_FORCE_UNAVAILABLE"

UNPRIVILEGED_ID = 65534
_TOOLS = ("bwrap", "setpriv", "unshare")


@dataclass(frozen=True, slots=True)
class IsolationStatus:
    """Whether this machine can run untrusted programs in the jail, and if not why."""

    available: bool
    reason: str = ""


def _tool(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin:/bin")


def _view() -> list[Path]:
    """Directories the child must be able to read: interpreter, libraries, packages."""
    import toolmesh
    import toolmesh_codegen

    paths = {
        Path(sys.base_prefix),
        Path(sys.prefix),
        Path(sysconfig.get_paths()["purelib"]),
        Path(sysconfig.get_paths()["platlib"]),
        Path(toolmesh.__file__).resolve().parent,
        Path(toolmesh_codegen.__file__).resolve().parent,
    }
    for system in ("/usr", "/etc/alternatives", "/etc/ld.so.cache"):
        paths.add(Path(system))
    keep: list[Path] = []
    for path in sorted(paths, key=lambda p: len(p.parts)):
        if path.exists() and not any(path.is_relative_to(k) for k in keep):
            keep.append(path)
    return keep


def jail_command(argv: list[str]) -> list[str]:
    """``argv`` wrapped in the jail (see the module docstring)."""
    bwrap, setpriv, unshare = (_tool(name) or name for name in _TOOLS)
    command = [
        bwrap,
        "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--die-with-parent", "--new-session", "--clearenv",
        "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8",
        "--proc", "/proc", "--dev", "/dev",
        "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
    ]  # fmt: skip
    made: set[Path] = {Path("/")}
    for path in _view():
        for parent in reversed(path.parents):
            if parent not in made and not parent.is_relative_to("/usr"):
                command += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        command += ["--ro-bind", str(path), str(path)]
        made.add(path)
    for name, value in os.environ.items():
        if name.startswith(("TOOLMESH_SANDBOX_", "OMP_", "OPENBLAS_", "MALLOC_")):
            command += ["--setenv", name, value]
    command += [
        "--chdir", "/", "--",
        setpriv, f"--reuid={UNPRIVILEGED_ID}", f"--regid={UNPRIVILEGED_ID}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
        unshare, "--user", "--map-current-user", "--",
        *argv,
    ]  # fmt: skip
    return command


def isolation_status() -> IsolationStatus:
    """Whether untrusted programs can run isolated here; never raises.

    Checks for the tools, libseccomp, and then starts the jail once (``true``) to see
    that the kernel grants the namespaces. Setting ``TOOLMESH_SANDBOX_FORCE_UNAVAILABLE``
    (test-only) makes it report unavailable with that value as the reason.
    """
    forced = os.environ.get(FORCE_UNAVAILABLE_ENV)
    if forced:
        return IsolationStatus(False, f"forced by {FORCE_UNAVAILABLE_ENV} ({forced})")
    if not sys.platform.startswith("linux"):
        return IsolationStatus(False, f"the sandbox needs Linux namespaces ({sys.platform})")
    missing = [name for name in _TOOLS if _tool(name) is None]
    if missing:
        return IsolationStatus(False, f"missing {', '.join(missing)} (bubblewrap, util-linux)")
    if os.geteuid() != 0:
        return IsolationStatus(False, "the jail is started as root (bwrap mounts the view)")
    try:
        import pyseccomp

        pyseccomp.SyscallFilter(defaction=pyseccomp.ALLOW)
    except Exception as exc:
        return IsolationStatus(False, f"seccomp is unavailable (libseccomp: {exc})")
    if "Seccomp:" not in Path("/proc/self/status").read_text():
        return IsolationStatus(False, "the kernel has no seccomp")
    try:
        done = subprocess.run(
            jail_command(["/bin/true"]), capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return IsolationStatus(False, f"the jail did not start: {exc}")
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip()[-300:]
        return IsolationStatus(False, f"the kernel refused the namespaces: {detail}")
    return IsolationStatus(True)
