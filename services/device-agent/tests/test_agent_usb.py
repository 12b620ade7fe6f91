"""Device management (SEC-2, SEC-4) on a fake sysfs tree: no real USB device can be attached here.

The tree mimics /sys/bus/usb/devices: "1-1" an IC card reader (class 0b, allowed), "1-2" a USB
stick (interface class 08) whose `authorized` the agent sets to 0, "1-3" a stick whose
`authorized` cannot be written (immutable file): the attempt is recorded with the errno name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from agent_harness import make_config, of_type, running_agent, wait_for, write_policy_cache

from madoguchi_agent.policy import Policy


def _device(
    root: Path,
    port: str,
    vendor: str,
    product: str,
    device_class: str,
    interfaces: list[str],
    serial: str | None = None,
    product_name: str | None = None,
) -> Path:
    d = root / port
    d.mkdir(parents=True)
    for name, value in (
        ("idVendor", vendor),
        ("idProduct", product),
        ("bDeviceClass", device_class),
        ("authorized", "1"),
        ("serial", serial),
        ("product", product_name),
    ):
        if value is not None:
            (d / name).write_text(value + "\n")
    for i, cls in enumerate(interfaces):
        iface = root / f"{port}:1.{i}"
        iface.mkdir()
        (iface / "bInterfaceClass").write_text(cls + "\n")
    return d


@contextlib.contextmanager
def _unwritable(path: Path):
    """Make a file refuse writes even to root: the immutable attribute (ext4 here); else 0444."""
    immutable = (
        os.geteuid() == 0
        and shutil.which("chattr")
        and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    )
    if not immutable:
        path.chmod(0o444)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)


async def test_mass_storage_is_blocked_and_a_refused_block_recorded(nats_server, nc, municipality, tmp_path):
    root = tmp_path / "sys-usb"
    (root / "usb1").mkdir(parents=True)  # a root hub: never reported
    (root / "usb1" / "idVendor").write_text("1d6b\n")
    _device(root, "1-1", "054c", "06c3", "00", ["0b"], product_name="RC-S380/S")
    stick = _device(root, "1-2", "0781", "5583", "00", ["08"], serial="4C530001230101117494")
    locked = _device(root, "1-3", "090c", "1000", "00", ["08"], serial="AA00000000012345")
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"usb": True}, sysfs_usb_root=root)
    write_policy_cache(config, Policy(usb_block_mass_storage=True, usb_scan_s=0.2))
    with _unwritable(locked / "authorized"):
        async with running_agent(config):
            await wait_for(
                nc, municipality, lambda es: len(of_type(es, "device.usb_violation")) >= 2, what="violations"
            )
            shutil.rmtree(root / "1-1")  # the reader is unplugged
            events = await wait_for(
                nc, municipality, lambda es: of_type(es, "device.usb_device_removed"), what="device removed"
            )

    attached = {e.port: e for e in of_type(events, "device.usb_device_attached")}
    assert set(attached) == {"1-1", "1-2", "1-3"}
    assert attached["1-1"].allowed and attached["1-1"].interface_classes == ("0b",)
    assert attached["1-1"].present_at_start and attached["1-1"].product == "RC-S380/S"
    assert not attached["1-2"].allowed

    violations = {e.port: e for e in of_type(events, "device.usb_violation")}
    assert set(violations) == {"1-2", "1-3"}  # reported once each, not at every scan
    blocked = violations["1-2"]
    assert blocked.kind == "mass_storage" and blocked.block_attempted and blocked.blocked and blocked.error is None
    # a serial holding a run of 12+ digits is redacted like any machine text (events/device.py)
    assert (blocked.vendor_id, blocked.product_id, blocked.serial) == ("0781", "5583", "4C[redacted]")
    assert (stick / "authorized").read_text().strip() == "0"
    refused = violations["1-3"]
    assert refused.block_attempted and not refused.blocked and refused.error in {"EPERM", "EACCES"}
    assert (locked / "authorized").read_text().strip() == "1"
    assert refused.serial == "AA[redacted]"

    removed = of_type(events, "device.usb_device_removed")
    assert [e.port for e in removed] == ["1-1"]


async def test_phones_and_unknown_classes_are_blocked_by_default_and_a_re_authorised_stick_alerts_again(
    nats_server, nc, municipality, tmp_path
):
    root = tmp_path / "sys-usb"
    phone = _device(root, "1-4", "04e8", "6860", "00", ["06", "ff"], product_name="Galaxy (MTP)")
    gadget = _device(root, "1-5", "1234", "abcd", "ff", ["ff"])
    stick = _device(root, "1-6", "0781", "5583", "00", ["08"])
    config = make_config(tmp_path, nats_server.url, municipality, monitors={"usb": True}, sysfs_usb_root=root)
    write_policy_cache(config, Policy(usb_scan_s=0.2))  # the built-in defaults otherwise
    async with running_agent(config):
        await wait_for(nc, municipality, lambda es: len(of_type(es, "device.usb_violation")) >= 3, what="blocked")
        (stick / "authorized").write_text("1\n")  # someone authorises the stick again
        events = await wait_for(
            nc, municipality, lambda es: len(of_type(es, "device.usb_violation")) >= 4, what="blocked again"
        )
    violations = of_type(events, "device.usb_violation")
    assert {(v.port, v.kind, v.blocked, v.reauthorized) for v in violations} == {
        ("1-4", "class_not_allowed", True, False),
        ("1-5", "class_not_allowed", True, False),
        ("1-6", "mass_storage", True, False),
        ("1-6", "mass_storage", True, True),
    }
    for d in (phone, gadget, stick):
        assert (d / "authorized").read_text().strip() == "0"
