"""A real Ray cluster on loopback for the Ray executor's tests and benchmark.

``RayCluster.start()`` runs ``ray start --head`` and joins a second node with
``ray start --address``, each with its own ``--num-cpus`` and a small object store, on
free ports, in a temporary folder of its own, with usage stats off and no dashboard.
Every node listens on 127.0.0.2 (a loopback address Ray does not rewrite into the
machine's outward one), so nothing leaves the machine.

Every process of the cluster (GCS, raylets, their agents, the Ray workers and the
processes those start) carries ``DMTEST_RAY_CLUSTER=<tag>`` and ``DMTEST_RAY_NODE=<node
tag>`` in its environment: ``stop()`` kills exactly those, by pid, and never another
Ray on the machine (no ``ray stop``). ``kill_raylet(node)`` is a ``kill -9`` of one
node's raylet. With ``DMTEST_RAY_KEEP=1`` the folder (the nodes' logs) is left behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.2"
RAY = str(Path(sys.executable).with_name("ray"))
OBJECT_STORE = 100 * 1000 * 1000  # bytes per node (Ray's minimum is 75 MB)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while chosen, so none repeats)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((HOST, 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def ray_available() -> bool:
    return Path(RAY).is_file()


@dataclass
class RayNode:
    tag: str
    cpus: int
    head: bool


@dataclass
class RayCluster:
    temp_dir: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    port: int = 0
    client_port: int = 0  # the head's Ray Client server (ray://)
    nodes: list[RayNode] = field(default_factory=list)
    start_s: float = 0.0  # seconds `ray start` took for the head and the first joined node

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://{HOST}:{self.client_port}"

    @classmethod
    def start(cls, cpus: tuple[int, ...] = (1, 1), tries: int = 3) -> RayCluster:
        """A head with ``cpus[0]`` CPUs and one joined node per further entry (tried
        again on fresh ports if a port was taken between choosing and binding it)."""
        began = time.monotonic()
        for attempt in range(tries):
            # short: Ray's unix sockets live below it (a path may not pass 107 bytes)
            cluster = cls(Path(tempfile.mkdtemp(prefix="dmray-", dir="/tmp")))
            try:
                cluster.port, cluster.client_port = free_ports(2)
                cluster._start_node(cpus[0], head=True)
                for n in cpus[1:]:
                    cluster._start_node(n, head=False)
            except RuntimeError:
                cluster.stop()
                if attempt + 1 == tries:
                    raise
                continue
            except BaseException:
                cluster.stop()
                raise
            cluster.start_s = time.monotonic() - began
            return cluster
        raise AssertionError("unreachable")

    def _env(self, node: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCMILL_", "RAY_"))}
        env.update(
            RAY_USAGE_STATS_ENABLED="0",
            DMTEST_RAY_CLUSTER=self.tag,
            DMTEST_RAY_NODE=node,
            PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"),
        )
        return env

    def _start_node(self, cpus: int, *, head: bool) -> RayNode:
        node = RayNode(tag=uuid.uuid4().hex[:8], cpus=cpus, head=head)
        # seven more, none of them the head's two (chosen earlier, closed since)
        ports = [p for p in free_ports(9) if p not in (self.port, self.client_port)][:7]
        args = [
            RAY, "start",
            f"--node-ip-address={HOST}",
            f"--num-cpus={cpus}",
            f"--object-store-memory={OBJECT_STORE}",
            f"--temp-dir={self.temp_dir}",
            f"--node-manager-port={ports[0]}",
            f"--object-manager-port={ports[1]}",
            f"--metrics-export-port={ports[2]}",
            f"--runtime-env-agent-port={ports[3]}",
            f"--dashboard-agent-grpc-port={ports[4]}",
            f"--dashboard-agent-listen-port={ports[5]}",
            "--include-log-monitor=false",
            "--disable-usage-stats",
        ]
        if head:
            args += [
                "--head", f"--port={self.port}", "--include-dashboard=false",
                f"--dashboard-port={ports[6]}", f"--ray-client-server-port={self.client_port}",
            ]
        else:
            args += [f"--address={self.address}"]
        result = subprocess.run(
            args, env=self._env(node.tag), capture_output=True, text=True, timeout=180,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"ray start failed ({result.returncode}):\n{result.stderr[-3000:]}")
        self.nodes.append(node)
        return node

    def add_node(self, cpus: int = 1) -> RayNode:
        return self._start_node(cpus, head=False)

    # --- processes ----------------------------------------------------------------

    def processes(self, node: RayNode | None = None) -> list[psutil.Process]:
        """This cluster's processes (or one node's), found by their environment and
        with their descendants."""
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter():
            env = _environ(proc.pid)
            if env.get("DMTEST_RAY_CLUSTER") != self.tag:
                continue
            if node is not None and env.get("DMTEST_RAY_NODE") != node.tag:
                continue
            found[proc.pid] = proc
            try:
                found.update((child.pid, child) for child in proc.children(recursive=True))
            except psutil.Error:
                pass
        return list(found.values())

    def raylet(self, node: RayNode) -> psutil.Process | None:
        for proc in self.processes(node):
            try:
                if proc.name() == "raylet" and proc.status() != psutil.STATUS_ZOMBIE:
                    return proc
            except psutil.Error:
                continue
        return None

    def kill_raylet(self, node: RayNode) -> int:
        """``kill -9`` of ``node``'s raylet; its pid."""
        raylet = self.raylet(node)
        assert raylet is not None, f"node {node.tag} has no raylet"
        raylet.kill()
        return raylet.pid

    def kill_node(self, node: RayNode) -> None:
        """Every process of ``node`` killed, and the node forgotten."""
        _kill(self.processes(node))
        if node in self.nodes:
            self.nodes.remove(node)

    def workers_alive(self, node: RayNode) -> bool:
        return self.raylet(node) is not None

    def stop(self) -> None:
        """Kill every process of this cluster (by pid) and remove its folder."""
        for _ in range(3):  # a worker may start while the others die
            procs = self.processes()
            if not procs:
                break
            _kill(procs)
            time.sleep(0.2)
        if not os.environ.get("DMTEST_RAY_KEEP"):  # its logs, to read after a failure
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def _environ(pid: int) -> dict[str, str]:
    """A process's environment as the kernel holds it (psutil gives up on a process
    whose title was rewritten over the start of that block, as Ray's agents do)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            data = handle.read()
    except OSError:
        return {}
    env: dict[str, str] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # dead, waiting for its reaper
    except psutil.Error:
        return True


def _kill(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_gone(p) for p in procs):
        time.sleep(0.05)
