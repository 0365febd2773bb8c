"""Where the nodes of one sandbox cluster live: their addresses, datacenters and seed.

Theory of operation: a cluster of one node (the default) keeps the sandbox's historic shape,
127.0.0.1 with its own native and storage ports, beside the other cluster on the same address.
A cluster of several nodes gives each node its own loopback address, as ccm does, and every node
uses the same ports (9042 and 7000 unless told otherwise): Linux answers on all of 127.0.0.0/8
and Cassandra binds to ``listen_address``/``rpc_address`` only, so 127.0.0.11:9042 never meets
127.0.0.1:9042.  Each cluster owns a block of :data:`BLOCK_SIZE` addresses (origin
127.0.0.11-19, target 127.0.0.21-29), so no address is ever shared between the clusters.

The nodes are split into ``dcs`` datacenters of equal size, in address order (4 nodes, 2 DCs:
.11 and .12 in dc1, .13 and .14 in dc2), named dc1, dc2, ... through
GossipingPropertyFileSnitch.  The first node is the seed of every node; ``up`` starts it first.
Token allocation optimises for the replication factor tests use (3, or fewer when a DC has
fewer nodes), with 4 vnodes per node.

Everything here is pure: it computes, it never touches a process or a file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from zdm.errors import SandboxError

#: the single-node clusters' address (each cluster on its own port there)
SINGLE_NODE_ADDRESS = "127.0.0.1"
#: the first address of each multi-node cluster's block, and how many addresses a block holds
FIRST_ADDRESS = {"origin": "127.0.0.11", "target": "127.0.0.21"}
BLOCK_SIZE = 9
#: the ports every node of a multi-node cluster uses (on its own address), as ccm does
MULTINODE_NATIVE_PORT = 9042
MULTINODE_STORAGE_PORT = 7000
#: the replication factor token allocation optimises for (the most a DC of the sandbox needs)
ALLOCATION_RF = 3


@dataclass(frozen=True, slots=True)
class NodePlace:
    """One node of a cluster: where it listens and which DC it is in (None: one-node cluster,
    SimpleSnitch, as the sandbox has always been)."""

    cluster: str
    index: int  # 1-based, in start order
    address: str
    seed: str
    dc: str | None
    rack: str | None
    #: allocate_tokens_for_local_replication_factor
    allocation_rf: int

    @property
    def name(self) -> str:
        """``origin`` for a one-node cluster (its directory and name since the first sandbox),
        ``origin-2`` for the second node of a multi-node one."""
        return self.cluster if self.dc is None else f"{self.cluster}-{self.index}"


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    cluster: str  # "origin" or "target"
    nodes: int = 1
    dcs: int = 1
    #: the first address of a multi-node cluster's block
    first_address: str | None = None

    @property
    def multinode(self) -> bool:
        return self.nodes > 1 or self.dcs > 1

    @property
    def block_start(self) -> str:
        return self.first_address or FIRST_ADDRESS[self.cluster]

    def validate(self) -> None:
        option = f"--{self.cluster}-nodes"
        if self.nodes < 1:
            raise SandboxError(f"{option} must be at least 1, not {self.nodes}")
        if self.dcs < 1:
            raise SandboxError(f"--{self.cluster}-dcs must be at least 1, not {self.dcs}")
        if self.nodes % self.dcs:
            raise SandboxError(
                f"{self.nodes} {self.cluster} nodes do not split evenly into {self.dcs} datacenters",
                hint=f"give {option} a multiple of --{self.cluster}-dcs (for example "
                     f"{option} {self.dcs * max(1, self.nodes // self.dcs)} --{self.cluster}-dcs {self.dcs})")
        if not self.multinode:
            return
        try:
            start = ipaddress.IPv4Address(self.block_start)
        except ValueError:
            raise SandboxError(f"{self.block_start!r} is not an IPv4 address",
                               hint="a multi-node cluster's block starts at a loopback "
                                    "address such as 127.0.0.11") from None
        if not start.is_loopback:
            raise SandboxError(f"{start} is not a loopback address (127.0.0.0/8)",
                               hint="the sandbox runs every node on this machine's loopback")
        if self.nodes > BLOCK_SIZE:
            last = start + BLOCK_SIZE - 1
            raise SandboxError(
                f"{self.nodes} {self.cluster} nodes do not fit the cluster's block of "
                f"{BLOCK_SIZE} addresses ({start}-{last})",
                hint=f"use {option} {BLOCK_SIZE} or fewer (each node takes about 1 GB of memory)")
        if int(start) + self.nodes - 1 > int(ipaddress.IPv4Address("127.255.255.254")):
            raise SandboxError(f"{self.nodes} nodes from {start} run past the loopback range")

    def addresses(self) -> list[str]:
        if not self.multinode:
            return [SINGLE_NODE_ADDRESS]
        start = ipaddress.IPv4Address(self.block_start)
        return [str(start + i) for i in range(self.nodes)]

    def block(self) -> tuple[str, str]:
        """The first and last address the cluster's block reserves."""
        start = ipaddress.IPv4Address(self.block_start)
        return str(start), str(start + BLOCK_SIZE - 1)

    def places(self) -> list[NodePlace]:
        addresses = self.addresses()
        if not self.multinode:
            return [NodePlace(self.cluster, 1, addresses[0], addresses[0], None, None, 1)]
        per_dc = self.nodes // self.dcs
        rf = min(ALLOCATION_RF, per_dc)
        return [NodePlace(self.cluster, i + 1, address, addresses[0], f"dc{i // per_dc + 1}",
                          "rack1", rf)
                for i, address in enumerate(addresses)]

    def datacenters(self) -> list[str]:
        return sorted({p.dc for p in self.places() if p.dc})


def check_apart(layouts: list[ClusterLayout]) -> None:
    """Refuse two multi-node clusters whose address blocks overlap."""
    multi = [lay for lay in layouts if lay.multinode]
    for i, a in enumerate(multi):
        for b in multi[i + 1:]:
            a_start, a_end = (int(ipaddress.IPv4Address(x)) for x in a.block())
            b_start, b_end = (int(ipaddress.IPv4Address(x)) for x in b.block())
            if a_start <= b_end and b_start <= a_end:
                raise SandboxError(
                    f"the {a.cluster} block ({'-'.join(a.block())}) overlaps the {b.cluster} "
                    f"block ({'-'.join(b.block())})",
                    hint=f"start the blocks at least {BLOCK_SIZE} addresses apart")
