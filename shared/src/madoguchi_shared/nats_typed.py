"""Typed doors into nats-py where its own annotations stop: methods taking untyped `**params` or
`**opts`, which strict type checking reports as partially unknown wherever they are called.

Each wrapper passes its arguments through unchanged; the ignore on each call names what nats-py
leaves untyped, so strict modules call these instead of the bare methods.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue


async def connect(servers: list[str], options: dict[str, Any]) -> NATS:
    """`nats.connect(servers, **options)`."""
    return await nats.connect(servers, **options)  # pyright: ignore[reportUnknownMemberType] - nats-py: **options untyped


def jetstream(nc: NATS) -> JetStreamContext:
    """`nc.jetstream()` with nats-py's defaults."""
    return nc.jetstream()  # pyright: ignore[reportUnknownMemberType] - nats-py: **opts untyped


def client_of(js: JetStreamContext) -> NATS:
    """The connection a JetStream context publishes on (nats-py keeps it in a private attribute)."""
    return js._nc  # pyright: ignore[reportPrivateUsage] - nats-py offers no public accessor


async def create_key_value(js: JetStreamContext, config: api.KeyValueConfig) -> KeyValue:
    """`js.create_key_value(config)`: the bucket as configured."""
    return await js.create_key_value(config)  # pyright: ignore[reportUnknownMemberType] - nats-py: **params untyped


async def add_stream(js: JetStreamContext, config: api.StreamConfig) -> api.StreamInfo:
    """`js.add_stream(config)`: the stream as configured."""
    return await js.add_stream(config)  # pyright: ignore[reportUnknownMemberType] - nats-py: **params untyped


async def update_stream(js: JetStreamContext, config: api.StreamConfig) -> api.StreamInfo:
    """`js.update_stream(config)`: the stream's configuration replaced."""
    return await js.update_stream(config)  # pyright: ignore[reportUnknownMemberType] - nats-py: **params untyped


async def publish_async(
    js: JetStreamContext, subject: str, payload: bytes, headers: dict[str, str]
) -> asyncio.Future[api.PubAck]:
    """`js.publish_async(subject, payload, headers=headers)`: the future of its acknowledgement."""
    return await js.publish_async(  # pyright: ignore[reportUnknownMemberType] - nats-py: `headers` an untyped Dict
        subject, payload, headers=headers
    )


async def subscribe_inbox(nc: NATS, subject: str) -> Subscription:
    """`nc.subscribe(subject)`: a subscription read with `next_msg`, no callback."""
    return await nc.subscribe(subject)  # pyright: ignore[reportUnknownMemberType] - nats-py: its `future` parameter is an untyped Future


async def watch_all(kv: KeyValue) -> KeyValue.KeyWatcher:
    """`kv.watchall()`: every key's latest value, then a None marker, then each update."""
    return await kv.watchall()  # pyright: ignore[reportUnknownMemberType] - nats-py: **kwargs untyped


async def watched(watcher: KeyValue.KeyWatcher) -> AsyncIterator[KeyValue.Entry | None]:
    """The entries of a watcher as it yields them (None: the initial values are all delivered)."""
    async for entry in watcher:  # pyright: ignore[reportUnknownVariableType] - nats-py: __anext__ unannotated
        yield entry


async def stop_watch(watcher: KeyValue.KeyWatcher) -> None:
    """`watcher.stop()`."""
    await watcher.stop()  # pyright: ignore[reportUnknownMemberType] - nats-py: its return unannotated


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


__all__ = [
    "add_consumer",
    "add_stream",
    "client_of",
    "connect",
    "create_key_value",
    "jetstream",
    "publish_async",
    "stop_watch",
    "subscribe",
    "subscribe_inbox",
    "update_stream",
    "watch_all",
    "watched",
]
