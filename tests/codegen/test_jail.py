"""The process layer on its own: arbitrary Python, run through the test-only entry
(``TOOLMESH_SANDBOX_TEST_ENTRY=1``, see ``Sandbox.run_unchecked``) inside an already
confined child, cannot read outside its view, open sockets, see host processes,
write anywhere or regain privileges. And where the jail is unavailable, untrusted
programs are refused, never run weaker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import toolmesh.codegen
from tests.codegen.conftest import ROOT
from toolmesh_codegen import (
    IsolationUnavailable,
    Limits,
    Sandbox,
    SandboxViolation,
    isolation_status,
    require_isolation,
)
from toolmesh_codegen._child import TEST_ENTRY_ENV
from toolmesh_codegen._jail import FORCE_UNAVAILABLE_ENV, _view

OK = "async def solve(image):\n    return list(image.size)\n"

PROBE = """
import os, socket

def attempt(action):
    try:
        value = action()
    except BaseException as exc:
        return type(exc).__name__
    return ["ok", repr(value)[:200]]

def command_line(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(bytes(1), b" ").decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__

def write(path, mode="w"):
    with open(path, mode) as fh:
        fh.write("x")

status = dict(
    line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
)
result = {
    "uid": [os.getuid(), os.geteuid(), os.getgid()],
    "groups": os.getgroups(),
    "caps": [status["CapEff"].strip(), status["CapPrm"].strip(), status["CapAmb"].strip()],
    "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "commands": sorted(command_line(p) for p in os.listdir("/proc") if p.isdigit()),
    "root": sorted(os.listdir("/")),
    "read_passwd": attempt(lambda: open("/etc/passwd").read()),
    "read_shadow": attempt(lambda: open("/etc/shadow").read()),
    "read_project": attempt(lambda: open(%(readme)r).read()),
    "read_tests": attempt(lambda: os.listdir(%(tests)r)),
    "tcp": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
    "unix": attempt(lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)),
    "write_tmp": attempt(lambda: write("/tmp/escape")),
    "write_root": attempt(lambda: write("/escape")),
    "append_package": attempt(lambda: write(%(package)r, "a")),
    "mkdir": attempt(lambda: os.mkdir("/proc/escape")),
    "setuid": attempt(lambda: os.setuid(0)),
    "fork": attempt(lambda: os.fork()),
    "exec": attempt(lambda: os.execv("/bin/sh", ["sh", "-c", "true"])),
    "kill_init": attempt(lambda: os.kill(1, 9)),
    "unshare": attempt(lambda: os.unshare(0x10000000) if hasattr(os, "unshare") else
                       __import__("ctypes").CDLL(None, use_errno=True).unshare(0x10000000)),
}
"""


@pytest.fixture(scope="module")
async def jailed(address: str) -> AsyncIterator[Sandbox]:
    async with Sandbox(address, limits=Limits(timeout_s=60)) as box:
        os.environ[TEST_ENTRY_ENV] = "1"  # the zygote takes it with it when it starts
        try:
            assert await box.run_unchecked("result = 1") == 1
        finally:
            del os.environ[TEST_ENTRY_ENV]
        yield box


@pytest.fixture(scope="module")
async def probe(jailed: Sandbox) -> dict:
    import toolmesh_codegen

    package = str(Path(toolmesh_codegen.__file__).resolve())
    code = PROBE % {
        "readme": str(ROOT / "README.md"),
        "tests": str(ROOT / "tests"),
        "package": package,
    }
    result = await jailed.run_unchecked(code)
    assert isinstance(result, dict)
    return result


def test_runs_as_an_unprivileged_user_without_capabilities(probe: dict) -> None:
    assert probe["uid"] == [65534, 65534, 65534]
    assert probe["groups"] in ([], [65534])
    assert probe["caps"] == ["0000000000000000"] * 3
    assert probe["no_new_privs"] == "1"
    assert probe["seccomp"] == "2"  # a filter is loaded


def test_cannot_regain_privileges(probe: dict) -> None:
    assert probe["setuid"] == "PermissionError"
    assert probe["unshare"] in ("PermissionError", ["ok", "-1"])
    assert probe["exec"] == "PermissionError"
    assert probe["fork"] in ("PermissionError", "BlockingIOError")
    assert probe["kill_init"] == "PermissionError"


def test_sees_only_its_own_view(probe: dict) -> None:
    # the root holds the jail's own mounts and symlinks, and the first folder of each
    # read-only bind (the interpreter, the venv, the packages: wherever the checkout is)
    binds = {path.parts[1] for path in _view()}
    assert binds >= {"usr", "etc"}
    assert set(probe["root"]) == {"proc", "dev", "lib", "lib64", "bin", "sbin"} | binds
    assert probe["read_passwd"] == "FileNotFoundError"
    assert probe["read_shadow"] == "FileNotFoundError"
    assert probe["read_project"] == "FileNotFoundError"
    assert probe["read_tests"] == "FileNotFoundError"


def test_sees_no_host_process(probe: dict, jailed: Sandbox) -> None:
    host = [p for p in os.listdir("/proc") if p.isdigit()]
    assert len(host) > 10
    # its own pid namespace: the jail's init is pid 1, and what it sees is the jail's own
    # processes (init, zygote, this child, children forked ahead or not yet reaped)
    assert 1 in probe["pids"]
    assert len(probe["pids"]) < len(host)
    seen = " ".join(probe["commands"])
    for host_process in ("pytest", "tritonserver", "toolmesh_gateway"):
        assert host_process not in seen, probe["commands"]
    assert "toolmesh_codegen" in seen  # the probe could read the jail's own command lines


def test_cannot_open_sockets(probe: dict) -> None:
    assert probe["tcp"] == "PermissionError"
    assert probe["unix"] == "PermissionError"


def test_cannot_write_anywhere(probe: dict) -> None:
    for key in ("write_tmp", "write_root", "append_package", "mkdir"):
        assert probe[key] in ("PermissionError", "OSError", "FileNotFoundError"), key
    assert not Path("/escape").exists() and not Path("/tmp/escape").exists()


async def test_the_test_entry_is_off_unless_enabled(address: str, street_paths: list[Path]) -> None:
    assert os.environ.get(TEST_ENTRY_ENV) is None
    async with Sandbox(address) as box:
        with pytest.raises(SandboxViolation, match="test entry is not enabled"):
            await box.run_unchecked("result = 1")
        assert (await box.run(OK, image=street_paths[0])).value == [768, 576]


def test_isolation_is_available_here() -> None:
    assert isolation_status().available, isolation_status().reason
    require_isolation()


async def test_untrusted_programs_are_refused_without_isolation(
    address: str, street_paths: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe reports unavailable (forced, test-only setting): programs are refused
    with an error naming --trusted, by run() and by a Sandbox, and nothing runs."""
    monkeypatch.setenv(FORCE_UNAVAILABLE_ENV, "simulated kernel without user namespaces")
    monkeypatch.setenv("TOOLMESH_ADDRESS", address)
    status = isolation_status()
    assert not status.available and "simulated kernel" in status.reason
    with pytest.raises(IsolationUnavailable, match="--trusted"):
        require_isolation()
    with pytest.raises(IsolationUnavailable, match="simulated kernel") as caught:
        await toolmesh.codegen.run(OK, image=street_paths[0])
    assert "toolmesh run --trusted" in str(caught.value)
    async with Sandbox(address) as box:
        with pytest.raises(IsolationUnavailable):
            await box.run(OK, image=street_paths[0])
        monkeypatch.delenv(FORCE_UNAVAILABLE_ENV)
        assert (await box.run(OK, image=street_paths[0])).value == [768, 576]
