"""Rehearsal "hosts" on one machine: network namespaces on a bridge, each with its own address.

A pool's pods in a cluster are separate hosts: each has its own IP, the gateway
opens one connection per pod, and a pod that dies takes its sockets with it. Loopback
ports on one host blur all of that (one address, shared ``lo``), so a rehearsal of
per-pod routing puts each "pod" in a network namespace of its own, joined to the
root namespace by a veth pair on a Linux bridge, as a CNI plugin would:

    root namespace: bridge <name> 10.x.y.1/24
    node i:         eth0 10.x.y.(10+i)/24 (veth peer on the bridge), lo up

Everything is created with ``ip`` (iproute2) and removed on :meth:`Network.stop`
(deleting a namespace deletes its veth end). It needs root (``CAP_NET_ADMIN``);
:func:`unavailable_reason` says why it cannot run where it cannot.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field

from toolmesh_local._managed import Managed

__all__ = ["Network", "NetworkError", "Node", "unavailable_reason"]


class NetworkError(RuntimeError):
    """An ``ip`` command failed; carries its output."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")


def unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (not root, no iproute2), or None."""
    if not os.path.exists("/proc/self/ns/net"):
        return "this kernel has no network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    return None


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.200-250.x.0 that no interface here uses yet."""
    used = subprocess.run(
        ["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False
    ).stdout
    for _ in range(50):
        net = ipaddress.IPv4Network(
            f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24"
        )
        prefix = str(net.network_address).rsplit(".", 1)[0] + "."
        if prefix not in used:
            return net
    raise NetworkError("no free 10.x.y.0/24 subnet found for the rehearsal bridge")


@dataclass(frozen=True, slots=True)
class Node:
    """One namespace: a host with its own address."""

    name: str
    address: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """Run a command on this node: ``(*node.prefix, "tritonserver", ...)``."""
        return ("ip", "netns", "exec", self.name)


@dataclass
class Network(Managed):
    """A bridge and ``count`` namespaces on it; a context manager that removes them all.

    Names carry a random tag, so two rehearsals (or a crashed one's leftovers) never clash.
    """

    count: int
    tag: str = field(default_factory=lambda: secrets.token_hex(3))
    nodes: list[Node] = field(default_factory=list)
    subnet: ipaddress.IPv4Network | None = None
    _bridge: str | None = None

    @property
    def gateway_address(self) -> str:
        """The root namespace's address on the bridge (where the nodes reach it)."""
        assert self.subnet is not None
        return str(self.subnet.network_address + 1)

    def start(self) -> Network:
        reason = unavailable_reason()
        if reason is not None:
            raise NetworkError(f"cannot create rehearsal hosts: {reason}")
        self.subnet = _free_subnet()
        bridge = f"tmbr{self.tag}"
        try:
            _ip("link", "add", bridge, "type", "bridge")
            self._bridge = bridge
            _ip("addr", "add", f"{self.gateway_address}/24", "dev", bridge)
            _ip("link", "set", bridge, "up")
            for i in range(self.count):
                self._add_node(i, bridge)
        except BaseException:
            self.stop()
            raise
        return self

    def _add_node(self, index: int, bridge: str) -> Node:
        assert self.subnet is not None
        name = f"tm{self.tag}n{index}"
        address = str(self.subnet.network_address + 10 + index)
        _ip("netns", "add", name)
        node = Node(name, address)
        self.nodes.append(node)  # from here on, close() removes it
        host_end = f"tmv{self.tag}{index}"
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("link", "set", host_end, "master", bridge, "up")
        _ip("-n", name, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
        _ip("-n", name, "link", "set", "lo", "up")
        return node

    def stop(self) -> None:
        """Delete the namespaces (and so their veths) and the bridge; idempotent."""
        for node in self.nodes:
            subprocess.run(["ip", "netns", "del", node.name], capture_output=True, check=False)
        self.nodes = []
        if self._bridge is not None:
            subprocess.run(["ip", "link", "del", self._bridge], capture_output=True, check=False)
            self._bridge = None
