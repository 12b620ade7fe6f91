"""A stand-in for systemd-logind on a private D-Bus (logind itself needs systemd as PID 1, which
the test machines do not run): it owns org.freedesktop.login1, answers ListSessions and the
session properties, and sends SessionNew, SessionRemoved and PropertiesChanged(LockedHint) as
logind does. The D-Bus daemon is the real one."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from jeepney import DBusAddress, MessageType, new_error, new_method_return, new_signal
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import open_dbus_connection

LOGIND = "org.freedesktop.login1"


class DbusDaemon:
    def __init__(self, folder: Path):
        self.socket = folder / "bus"
        self.address = f"unix:path={self.socket}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> DbusDaemon:
        self.proc = subprocess.Popen(
            ["dbus-daemon", "--session", "--nofork", "--nopidfile", f"--address={self.address}", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("unix:"):
            raise RuntimeError(f"dbus-daemon did not start: {line}")
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class FakeLogind:
    def __init__(self, address: str):
        self.conn = open_dbus_connection(bus=address)
        reply = self.conn.send_and_get_reply(message_bus.RequestName(LOGIND), timeout=2)
        assert reply.body[0] == 1, "could not own org.freedesktop.login1"
        self.sessions: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # two threads send: never interleave two messages' bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def path(sid: str) -> str:
        return f"/org/freedesktop/login1/session/_3{sid}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.conn.receive(timeout=0.2)
            except TimeoutError:
                continue
            except OSError:
                return
            if msg.header.message_type != MessageType.method_call:
                continue
            member = msg.header.fields.get(3)
            path = msg.header.fields.get(1)
            with self._lock:
                if member == "ListSessions":
                    rows = [(s["id"], s["uid"], "desk", s["seat"], self.path(s["id"])) for s in self.sessions.values()]
                    self._send(new_method_return(msg, "a(susso)", (rows,)))
                elif member == "GetAll":
                    s = next((s for s in self.sessions.values() if self.path(s["id"]) == path), None)
                    if s is None:
                        self._send(new_error(msg, "org.freedesktop.login1.NoSuchSession"))
                        continue
                    props = {
                        "Id": ("s", s["id"]),
                        "User": ("(uo)", (s["uid"], f"/org/freedesktop/login1/user/_{s['uid']}")),
                        "Seat": ("(so)", (s["seat"], "/org/freedesktop/login1/seat/seat0")),
                        "Remote": ("b", s["remote"]),
                        "Class": ("s", s["class"]),
                        "LockedHint": ("b", s["locked"]),
                    }
                    self._send(new_method_return(msg, "a{sv}", (props,)))
                else:
                    self._send(new_error(msg, "org.freedesktop.DBus.Error.UnknownMethod"))

    def _send(self, msg) -> None:
        with self._send_lock:
            self.conn.send(msg)

    def _emit(self, path: str, interface: str, member: str, signature: str, body: tuple) -> None:
        self._send(new_signal(DBusAddress(path, interface=interface), member, signature, body))

    def logon(self, sid: str, uid: int, klass: str = "user", remote: bool = False) -> None:
        with self._lock:
            self.sessions[sid] = {
                "id": sid,
                "uid": uid,
                "seat": "seat0",
                "remote": remote,
                "class": klass,
                "locked": False,
            }
        self._emit(
            "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "SessionNew", "so", (sid, self.path(sid))
        )

    def set_locked(self, sid: str, locked: bool) -> None:
        with self._lock:
            self.sessions[sid]["locked"] = locked
        self._emit(
            self.path(sid),
            "org.freedesktop.DBus.Properties",
            "PropertiesChanged",
            "sa{sv}as",
            ("org.freedesktop.login1.Session", {"LockedHint": ("b", locked)}, []),
        )

    def logoff(self, sid: str) -> None:
        with self._lock:
            self.sessions.pop(sid)
        self._emit(
            "/org/freedesktop/login1", "org.freedesktop.login1.Manager", "SessionRemoved", "so", (sid, self.path(sid))
        )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.conn.close()
