"""Logon, logoff, lock and unlock of the PC's user sessions (SEC-2 "every operation"), from logind.

systemd-logind announces sessions on the system D-Bus: `org.freedesktop.login1.Manager` sends
`SessionNew(id, path)` and `SessionRemoved(id, path)`; a session's lock state is its `LockedHint`
property (`PropertiesChanged` on the session object), which the screen locker sets. `SessionWatch`
listens on its own thread (jeepney, blocking I/O), reads a new session's properties (user id,
seat, remote, class) and calls `on_change(SessionChange)`. Greeter and background sessions are
not desk users' sessions and are not reported.

The D-Bus address is configurable (`dbus_address`; default the system bus), which is also how the
tests run it: a private dbus-daemon with a stand-in for logind, since logind itself needs systemd
as PID 1. Without a bus, or without logind on it, `start()` raises and the agent reports a gap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from jeepney import DBusAddress, MatchRule, MessageType, Properties
from jeepney.bus_messages import message_bus
from jeepney.io.blocking import DBusConnection, open_dbus_connection

from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

LOGIND = "org.freedesktop.login1"
MANAGER_IF = "org.freedesktop.login1.Manager"
SESSION_IF = "org.freedesktop.login1.Session"
PROPS_IF = "org.freedesktop.DBus.Properties"
SESSION_PATHS = "/org/freedesktop/login1/session"
REPORTED_CLASSES = ("user", "")


@dataclass(frozen=True)
class SessionChange:
    action: str  # logon | logoff | lock | unlock
    session: str
    uid: int | None
    seat: str | None
    remote: bool


class SessionWatch:
    def __init__(self, on_change: Callable[[SessionChange], None], address: str | None = None):
        self.on_change = on_change
        self.address = address or "SYSTEM"
        self._conn: DBusConnection | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._signals: deque = deque()
        self._sessions: dict[str, dict] = {}  # object path -> {id, uid, seat, remote, locked}

    def start(self) -> None:
        """Connect and subscribe; raises OSError/ConnectionError/TimeoutError/RuntimeError when
        there is no bus or no logind on it."""
        conn = open_dbus_connection(bus=self.address)
        try:
            has_owner = conn.send_and_get_reply(message_bus.NameHasOwner(LOGIND), timeout=2).body[0]
            if not has_owner:
                raise RuntimeError("logind is not on the bus")
            for rule in (
                MatchRule(type="signal", sender=LOGIND, interface=MANAGER_IF, member="SessionNew"),
                MatchRule(type="signal", sender=LOGIND, interface=MANAGER_IF, member="SessionRemoved"),
                MatchRule(
                    type="signal",
                    sender=LOGIND,
                    interface=PROPS_IF,
                    member="PropertiesChanged",
                    path_namespace=SESSION_PATHS,
                ),
            ):
                conn.send_and_get_reply(message_bus.AddMatch(rule), timeout=2)
            conn.filter(MatchRule(type="signal"), queue=self._signals)
            self._conn = conn
            for path in self._list_sessions():  # sessions open at start: known, not reported as new
                self._sessions[path] = self._properties(path)
        except Exception:
            conn.close()
            raise
        self._thread = threading.Thread(target=self._run, name="logind-watch", daemon=True)
        self._thread.start()

    def _bus(self) -> DBusConnection:
        """The connection `start` opened (everything that reads the bus runs after it)."""
        if self._conn is None:
            raise ConnectionError("the session watch is not connected to the bus")
        return self._conn

    def _list_sessions(self) -> list[str]:
        manager = DBusAddress("/org/freedesktop/login1", bus_name=LOGIND, interface=MANAGER_IF)
        from jeepney import new_method_call

        reply = self._bus().send_and_get_reply(new_method_call(manager, "ListSessions"), timeout=2)
        return [row[4] for row in reply.body[0]] if reply.header.message_type == MessageType.method_return else []

    def _properties(self, path: str) -> dict:
        session = DBusAddress(path, bus_name=LOGIND, interface=SESSION_IF)
        reply = self._bus().send_and_get_reply(Properties(session).get_all(), timeout=2)
        if reply.header.message_type != MessageType.method_return:
            log.warning("sessions.properties_failed", error=str(reply.header.fields.get(4)), body=str(reply.body)[:200])
            return {
                "id": path.rsplit("/", 1)[-1],
                "uid": None,
                "seat": None,
                "remote": False,
                "locked": False,
                "class": "",
            }
        props = {k: v[1] for k, v in reply.body[0].items()}
        user = props.get("User")
        seat = props.get("Seat")
        return {
            "id": str(props.get("Id") or path.rsplit("/", 1)[-1]),
            "uid": int(user[0]) if user else None,
            "seat": str(seat[0]) if seat and seat[0] else None,
            "remote": bool(props.get("Remote", False)),
            "locked": bool(props.get("LockedHint", False)),
            "class": str(props.get("Class", "")),
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self._signals:
                    self._bus().recv_messages(timeout=0.5)
            except TimeoutError:
                continue
            except (OSError, ValueError) as exc:
                if not self._stop.is_set():
                    log.warning("sessions.bus_lost", error=type(exc).__name__)
                return
            while self._signals:
                try:
                    self._handle(self._signals.popleft())
                except Exception:  # one odd message never stops the watch
                    log.exception("sessions.signal_failed")

    def _handle(self, msg) -> None:
        member = msg.header.fields.get(3)  # HeaderFields.member
        path = msg.header.fields.get(1)  # HeaderFields.path
        if member == "SessionNew":
            sid, spath = msg.body
            info = self._properties(spath)  # a session already gone again: its id, uid unknown
            info["id"] = str(sid)
            self._sessions[spath] = info
            self._report("logon", info)
        elif member == "SessionRemoved":
            _sid, spath = msg.body
            info = self._sessions.pop(spath, None) or {
                "id": _sid,
                "uid": None,
                "seat": None,
                "remote": False,
                "class": "",
            }
            self._report("logoff", info)
        elif member == "PropertiesChanged" and msg.body[0] == SESSION_IF:
            changed = msg.body[1]
            if "LockedHint" not in changed:
                return
            info = self._sessions.get(path) or self._properties(path)
            self._sessions[path] = info
            locked = bool(changed["LockedHint"][1])
            if locked != info.get("locked"):
                info["locked"] = locked
                self._report("lock" if locked else "unlock", info)

    def _report(self, action: str, info: dict) -> None:
        if info.get("class") not in REPORTED_CLASSES:
            return  # the login screen (greeter), background sessions
        self.on_change(SessionChange(action, info["id"], info["uid"], info["seat"], info["remote"]))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._conn is not None:
            self._conn.close()
