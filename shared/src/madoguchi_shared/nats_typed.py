"""Typed doors into nats-py where its own annotations stop: methods taking untyped `**params` or
`**opts`, which strict type checking reports as partially unknown wherever they are called.

Each wrapper passes its arguments through unchanged; the ignore on each call names what nats-py
leaves untyped, so strict modules call these instead of the bare methods.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
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


async def subscribe(
    nc: NATS,
    subject: str,
    cb: Callable[[Msg], Awaitable[None]],
    *,
    pending_msgs_limit: int,
    pending_bytes_limit: int,
) -> Subscription:
    """`nc.subscribe(subject, cb=cb, ...)`: a callback subscription with the given pending limits."""
    return await nc.subscribe(  # pyright: ignore[reportUnknownMemberType] - nats-py: its `future` parameter is an untyped Future
        subject, cb=cb, pending_msgs_limit=pending_msgs_limit, pending_bytes_limit=pending_bytes_limit
    )


async def add_consumer(js: JetStreamContext, stream: str, config: api.ConsumerConfig) -> api.ConsumerInfo:
    """`js.add_consumer(stream, config)`: the consumer as configured."""
    return await js.add_consumer(stream, config)  # pyright: ignore[reportUnknownMemberType] - nats-py: **params untyped


__all__ = ["add_consumer", "client_of", "create_key_value", "jetstream", "subscribe"]
