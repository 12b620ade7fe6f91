"""Typed doors into nats-py where its own annotations stop: methods taking untyped `**params` or
`**opts`, which strict type checking reports as partially unknown wherever they are called.

Each wrapper passes its arguments through unchanged; the ignore on each call names what nats-py
leaves untyped, so strict modules call these instead of the bare methods.
"""

from __future__ import annotations

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue


def jetstream(nc: NATS) -> JetStreamContext:
    """`nc.jetstream()` with nats-py's defaults."""
    return nc.jetstream()  # pyright: ignore[reportUnknownMemberType] - nats-py: **opts untyped


def client_of(js: JetStreamContext) -> NATS:
    """The connection a JetStream context publishes on (nats-py keeps it in a private attribute)."""
    return js._nc  # pyright: ignore[reportPrivateUsage] - nats-py offers no public accessor


async def create_key_value(js: JetStreamContext, config: api.KeyValueConfig) -> KeyValue:
    """`js.create_key_value(config)`: the bucket as configured."""
    return await js.create_key_value(config)  # pyright: ignore[reportUnknownMemberType] - nats-py: **params untyped


__all__ = ["client_of", "create_key_value", "jetstream"]
