"""A cluster on loopback from the wheels (`make cluster`, `madoguchi run --cluster`, the tests):
three NATS nodes (JetStream R3, `sync_interval: always`, TLS for clients and routes from a CA
generated under the data folder) and PostgreSQL primary + streaming standby (pg_basebackup).

deploy/README.md describes the same topology on real hosts; the configuration written here for
each node is what deploy/nats/node*.conf hold, with loopback addresses and generated paths.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from madoguchi_shared import tls
from madoguchi_shared.runtime import (
    START_ATTEMPTS,
    NatsServer,
    PortTaken,
    PostgresServer,
    # the runtime's private helpers for starting PostgreSQL: the standby below starts the same way
    _as_pg_user,  # pyright: ignore[reportPrivateUsage]
    _open_path_for,  # pyright: ignore[reportPrivateUsage]
    _pg_bin,  # pyright: ignore[reportPrivateUsage]
    free_port,
    stop_stale,
)

CLUSTER_NAME = "madoguchi"


def node_config(
    index: int, route_ports: list[int], material: tls.Material | None, *, verify_clients: bool = True
) -> str:
    """nats-server configuration of node `index` (client port, store and monitor come from the command line);
    with no route ports, a single node (no cluster block)."""
    routes = "\n".join(f"    nats-route://127.0.0.1:{p}" for p in route_ports)
    parts = [
        f"server_name: mg-{index}",
        "jetstream {",
        "  # fsync every write before acknowledging it (the default acknowledges writes a crash can lose)",
        "  sync_interval: always",
        "}",
    ]
    if material is not None:
        parts.append(tls.nats_tls_block(material.ca, material.server, verify_clients=verify_clients))
    if not route_ports:
        return "\n".join(parts) + "\n"
    parts += [
        "cluster {",
        f"  name: {CLUSTER_NAME}",
        f"  listen: 127.0.0.1:{route_ports[index]}",
        "  routes: [",
        routes,
        "  ]",
    ]
    if material is not None:
        parts.append(tls.nats_tls_block(material.ca, material.server, verify_clients=True, indent="  "))
    parts.append("}")
    return "\n".join(parts) + "\n"


@dataclass
class TlsNatsCluster:
    """Three (or `size`) NATS nodes with routes between them; TLS when `material` is given; with
    `auth_dir`, the identities on file there (madoguchi_shared.natsauth: one per service, the
    supervisor, the tools, each desk laptop) are the only users each node lets in."""

    root: Path
    material: tls.Material | None
    size: int = 3
    client_ports: list[int] = field(default_factory=list[int])
    route_ports: list[int] = field(default_factory=list[int])
    monitor_ports: list[int] = field(default_factory=list[int])
    nodes: list[NatsServer] = field(default_factory=list[NatsServer])
    auth_dir: Path | None = None
    _picked: tuple[bool, bool, bool] = field(default=(False, False, False), init=False, repr=False)

    def __post_init__(self) -> None:
        # ports not given are picked here, and picked again at start when one turns out taken
        self._picked = (not self.client_ports, not self.route_ports, not self.monitor_ports)
        self.client_ports = self.client_ports or [free_port() for _ in range(self.size)]
        self.route_ports = self.route_ports or [free_port() for _ in range(self.size)]
        self.monitor_ports = self.monitor_ports or [free_port() for _ in range(self.size)]
        self._plan_nodes()

    def _plan_nodes(self) -> None:
        pick_client, _pick_route, pick_monitor = self._picked
        self.nodes = [
            NatsServer(
                self.root / f"nats-{i}",
                port=self.client_ports[i],
                monitor_port=self.monitor_ports[i],
                config=node_config(i, self.route_ports, self.material),
                auth_dir=self.auth_dir,
                # a node's client and monitor ports are its own: the node picks them again itself if taken
                repick_ports=pick_client and pick_monitor,
            )
            for i in range(self.size)
        ]

    @property
    def url(self) -> str:
        """Every node's URL (with the tools' identity when the nodes require one)."""
        return ",".join(n.url for n in self.nodes)

    @property
    def address(self) -> str:
        """Every node's address, no identity: each process adds its own (Settings.nats_url_for)."""
        return ",".join(n.address for n in self.nodes)

    def reload(self) -> None:
        """Every node re-reads its users (a laptop credential issued): SIGHUP."""
        for node in self.nodes:
            node.reload()

    def start(self) -> TlsNatsCluster:
        """Start every node. A route port is in every node's configuration: when a node finds its picked route
        port taken, the nodes started so far stop and all start again on fresh route ports (up to
        START_ATTEMPTS times)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                for node in self.nodes:
                    node.start()
                return self
            except PortTaken:
                if not self._picked[1] or attempt == START_ATTEMPTS:
                    raise
                self.stop()
                self.route_ports = [free_port() for _ in range(self.size)]
                self.client_ports = [n.port for n in self.nodes]
                self.monitor_ports = [n.monitor_port for n in self.nodes]
                self._plan_nodes()
        raise AssertionError("unreachable")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class StandbyPostgres(PostgresServer):
    """A streaming standby of `primary`: made once with pg_basebackup (-R writes primary_conninfo
    and standby.signal), then started like any PostgreSQL; it serves reads and replays the primary's WAL."""

    def __init__(self, data_dir: Path, primary: PostgresServer, port: int = 0):
        super().__init__(data_dir, port=port)
        self.primary = primary

    def start(self) -> StandbyPostgres:
        bin_dir = _pg_bin()
        kwargs = _as_pg_user()
        repick = self._may_repick()
        self.port = self.port or free_port()
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        socket_dir = self.data_dir / "sock"
        socket_dir.mkdir(exist_ok=True)
        log = self.data_dir / "postgres.log"
        log.touch()
        secret = self.data_dir / "superuser.password"
        shutil.copyfile(self.primary.data_dir / "superuser.password", secret)
        secret.chmod(0o600)
        self.password = secret.read_text().strip()
        _open_path_for(self.data_dir, kwargs)
        stop_stale(pgdata / "postmaster.pid", str(pgdata), signal.SIGINT)
        if not (pgdata / "PG_VERSION").exists():
            done = subprocess.run(
                [
                    str(bin_dir / "pg_basebackup"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.primary.port),
                    "-U",
                    self.primary.user,
                    "-D",
                    str(pgdata),
                    "-R",
                    "-X",
                    "stream",
                    "-c",
                    "fast",
                    "--no-password",
                ],
                env={**os.environ, "PGPASSWORD": self.password},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                **kwargs,
            )
            if done.returncode != 0:
                raise RuntimeError(f"pg_basebackup failed ({done.returncode}): {done.stderr.strip()}")
        self._spawn(bin_dir, pgdata, socket_dir, log, "postgres standby", kwargs, repick=repick, hot_standby="on")
        return self


SERVICE_ENV_TLS = ("MADOGUCHI_NATS_TLS_CA", "MADOGUCHI_NATS_TLS_CERT", "MADOGUCHI_NATS_TLS_KEY")


def tls_env(material: tls.Material, client: str) -> dict[str, str]:
    """The environment that makes `client` verify the servers and present its own certificate."""
    pair = material.clients[client]
    return dict(zip(SERVICE_ENV_TLS, (str(material.ca), str(pair.cert), str(pair.key)), strict=True))


def wait_for_meta_leader(cluster: TlsNatsCluster, timeout: float = 60.0) -> None:
    """Until the nodes have elected a JetStream meta leader (streams cannot be made before)."""
    import json
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for node in cluster.nodes:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{node.monitor_port}/jsz", timeout=1) as resp:
                    if json.loads(resp.read()).get("meta_cluster", {}).get("leader"):
                        return
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"the NATS cluster elected no JetStream leader within {timeout:g} s")


@dataclass
class LoopbackCluster:
    """What `madoguchi run --cluster` starts: the NATS nodes, PostgreSQL primary and standby, the TLS material."""

    nats: TlsNatsCluster
    primary: PostgresServer
    standby: StandbyPostgres
    material: tls.Material

    @classmethod
    def plan(
        cls, data: Path, *, nats_port: int, monitor_port: int, pg_port: int, clients: tuple[str, ...], auth: bool = True
    ) -> LoopbackCluster:
        """Fixed loopback ports from the settings: clients nats_port+0..2, routes nats_port+2000+0..2,
        monitoring monitor_port+0..2; PostgreSQL primary pg_port, standby pg_port+1. With `auth`, one NATS
        identity per client (service), the supervisor's and the tools' (admin), as `madoguchi run` makes them."""
        material = tls.generate(data / "tls", clients=("operator", *clients))
        if auth:
            from madoguchi_shared import natsauth

            natsauth.ensure_embedded(data, list(clients))
        nats = TlsNatsCluster(
            data / "nats",
            material,
            client_ports=[nats_port + i for i in range(3)],
            route_ports=[nats_port + 2000 + i for i in range(3)],
            monitor_ports=[monitor_port + i for i in range(3)],
            auth_dir=data if auth else None,
        )
        primary = PostgresServer(data / "postgres", port=pg_port)
        return cls(nats, primary, StandbyPostgres(data / "postgres-standby", primary, port=pg_port + 1), material)

    def env(self) -> dict[str, str]:
        """The environment of every process pointed at the cluster (the operator's certificate)."""
        return {
            "MADOGUCHI_NATS_URL": self.nats.address,
            "MADOGUCHI_STREAM_REPLICAS": "3",
            **tls_env(self.material, "operator"),
        }

    def describe(self) -> list[str]:
        lines = [
            f"nats-server  mg-{i} {n.address}  (TLS, clients verified; routes 127.0.0.1:{p} TLS; "
            f"monitor http://127.0.0.1:{n.monitor_port})"
            for i, (n, p) in enumerate(zip(self.nats.nodes, self.nats.route_ports, strict=True))
        ]
        lines.append(
            f"             JetStream R3, sync_interval always; CA {self.material.ca}"
            + ("; one bus identity per service" if self.nats.auth_dir else "")
        )
        lines.append(f"postgresql   primary 127.0.0.1:{self.primary.port} (data {self.primary.data_dir})")
        lines.append(
            f"postgresql   standby 127.0.0.1:{self.standby.port} streaming from the primary, read-only "
            f"(data {self.standby.data_dir})"
        )
        return lines
