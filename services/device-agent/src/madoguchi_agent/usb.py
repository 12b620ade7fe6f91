"""Device management (SEC-2, SEC-4): USB devices from sysfs, mass storage blocked.

Linux lists USB devices under /sys/bus/usb/devices: a device is an entry like "1-1" or "1-1.2"
with idVendor, idProduct, bDeviceClass, serial...; its interfaces are entries "1-1:1.0" with
bInterfaceClass. Mass storage is interface (or device) class 08. Writing "0" to the device's
`authorized` file makes the kernel unbind its drivers: the OS mechanism for de-authorising a
device. When that write is refused (no privilege, read-only, immutable), the attempt is recorded
with the errno name. The root is configurable, so tests use a fake tree.

Root hubs ("usbN") belong to the host controller and are not reported. The IC card reader's class
(0b, smart card) is in the default allowed classes.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path

from madoguchi_agent.policy import Policy
from madoguchi_shared.logging import get_logger

log = get_logger(__name__)

MASS_STORAGE = "08"


@dataclass(frozen=True)
class UsbDevice:
    port: str
    vendor_id: str
    product_id: str
    device_class: str
    interface_classes: tuple[str, ...]
    manufacturer: str | None
    product: str | None
    serial: str | None
    authorized: bool | None

    @property
    def key(self) -> tuple[str, str, str, str | None]:
        return (self.port, self.vendor_id, self.product_id, self.serial)

    @property
    def classes(self) -> set[str]:
        return {self.device_class, *self.interface_classes} - {"00"}

    @property
    def mass_storage(self) -> bool:
        return MASS_STORAGE in self.classes


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _hex(value: str | None, width: int) -> str:
    value = (value or "").lower().removeprefix("0x")
    if len(value) != width or any(c not in "0123456789abcdef" for c in value):
        return "0" * width
    return value


def scan(root: Path) -> dict[tuple, UsbDevice]:
    """Every USB device under a sysfs devices root, by (port, vendor, product, serial)."""
    try:
        names = sorted(p.name for p in root.iterdir())
    except OSError:
        return {}
    devices: dict[tuple, UsbDevice] = {}
    for name in names:
        if ":" in name or name.startswith("usb"):
            continue
        d = root / name
        if _read(d / "idVendor") is None:
            continue
        interfaces = tuple(
            sorted({_hex(_read(root / i / "bInterfaceClass"), 2) for i in names if i.startswith(name + ":")})
        )
        auth = _read(d / "authorized")
        dev = UsbDevice(
            port=name,
            vendor_id=_hex(_read(d / "idVendor"), 4),
            product_id=_hex(_read(d / "idProduct"), 4),
            device_class=_hex(_read(d / "bDeviceClass"), 2),
            interface_classes=interfaces,
            manufacturer=_read(d / "manufacturer"),
            product=_read(d / "product"),
            serial=_read(d / "serial"),
            authorized=None if auth is None else auth == "1",
        )
        devices[dev.key] = dev
    return devices


def allowed(dev: UsbDevice, policy: Policy) -> bool:
    if f"{dev.vendor_id}:{dev.product_id}" in policy.usb_allowed_devices:
        return True
    return not dev.mass_storage and dev.classes <= set(policy.usb_allowed_classes)


def block(root: Path, port: str) -> tuple[bool, str | None]:
    """De-authorise a device: write "0" to its sysfs `authorized` file. (ok, errno name)."""
    try:
        with open(root / port / "authorized", "w") as f:
            f.write("0")
        return True, None
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        log.warning("usb.block_failed", port=port, error=name)
        return False, name


@dataclass(frozen=True)
class UsbChange:
    kind: str  # attached | removed | violation
    device: UsbDevice
    present_at_start: bool = False
    allowed: bool = True
    violation: str | None = None  # mass_storage | class_not_allowed
    block_attempted: bool = False
    blocked: bool = False
    error: str | None = None
    reauthorized: bool = False


class UsbWatch:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._known: dict[tuple, UsbDevice] = {}
        self._first = True
        # violations reported while the device stays plugged in: key -> blocked?
        self._reported: dict[tuple, bool] = {}

    def step(self, policy: Policy) -> list[UsbChange]:
        """Scan once: what appeared, what left, what violates the policy (and block it)."""
        current = scan(self.root)
        changes: list[UsbChange] = []
        for key, dev in self._known.items():
            if key not in current:
                changes.append(UsbChange("removed", dev))
                self._reported.pop(key, None)
        for key, dev in current.items():
            ok = allowed(dev, policy)
            if key not in self._known:
                changes.append(UsbChange("attached", dev, present_at_start=self._first, allowed=ok))
            if ok:
                continue
            reauthorized = False
            if key in self._reported:
                # once reported, only a device re-authorised after our block is news (tamper)
                if not (self._reported[key] and dev.authorized is True):
                    continue
                reauthorized = True
            kind = "mass_storage" if dev.mass_storage else "class_not_allowed"
            should_block = policy.usb_block_mass_storage if kind == "mass_storage" else policy.usb_block_not_allowed
            blocked, error = block(self.root, dev.port) if should_block else (False, None)
            changes.append(
                UsbChange(
                    "violation",
                    dev,
                    allowed=False,
                    violation=kind,
                    block_attempted=should_block,
                    blocked=blocked,
                    error=error,
                    reauthorized=reauthorized,
                )
            )
            self._reported[key] = blocked
        self._known = current
        self._first = False
        return changes
