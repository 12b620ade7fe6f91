"""Framing JetStream deliveries straight off the socket, for the one reader (`madoguchi_shared.reader`).

`_FastParser` is nats-py's protocol parser with a bulk path: the deliveries to a reader's inbox
become a list of `Delivery` tuples per socket read, with no nats-py `Msg`, queue or task per
message. `parse_ack_reply` and `parse_headers` read what the reader needs from a delivery: the
stream sequence and pending count (from the reply subject) and, when asked, the header block.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.errors import ProtocolError
from nats.protocol.parser import AWAITING_CONTROL_LINE, Parser


def parse_ack_reply(reply: str) -> tuple[int, int, int] | None:
    """(stream sequence, consumer sequence, pending) from a JetStream delivery's reply subject."""
    if not reply or not reply.startswith("$JS.ACK."):
        return None
    t = reply.split(".")
    if len(t) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(t[5]), int(t[6]), int(t[8])
    if (
        len(t) >= 12
    ):  # $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token>
        return int(t[7]), int(t[8]), int(t[10])
    return None


def parse_headers(raw: bytes | None) -> dict[str, str] | None:
    """A NATS header block (`NATS/1.0[ status description]\r\nName: Value\r\n...`) as nats-py reads it:
    names kept as sent, values stripped; the status line as `Status` / `Description`."""
    if not raw:
        return None
    lines = raw.split(b"\r\n")
    out: dict[str, str] = {}
    first = lines[0].split(b" ", 2)
    if len(first) > 1 and first[1]:
        out["Status"] = first[1].decode()
        if len(first) > 2 and first[2].strip():
            out["Description"] = first[2].strip().decode("utf-8", "replace")
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            out[name.strip().decode("ascii", "replace")] = value.strip().decode("utf-8", "replace")
    return out or None


# A delivery framed by _FastParser: (subject, reply, header block or None, payload); a delivery nats-py
# framed itself carries its headers already read (a dict).
Delivery = tuple[bytes, bytes, "bytes | dict[str, str] | None", bytes]


class _FastParser(Parser):
    """nats-py's protocol parser with a bulk path: every MSG/HMSG is framed here (split, not regex);
    those for a registered subscription id go, a whole socket read at a time, to its handler as a list
    of `Delivery`; any other message goes to nats-py's own `_process_msg`, and every other protocol
    line (PING, PONG, INFO, +OK, -ERR) to nats-py's parser, one line at a time, in order.
    """

    nc: NATS  # always given: the client whose socket this parser reads

    def __init__(self, nc: NATS) -> None:
        super().__init__(nc)  # pyright: ignore[reportUnknownMemberType] - nats-py: Parser.__init__'s nc is untyped
        self.bulk: dict[int, Callable[[list[Delivery]], Awaitable[None]]] = {}

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if self.state != AWAITING_CONTROL_LINE:  # left mid-message by the parser this one replaced
            await super().parse()
            buf = self.buf
            if self.state != AWAITING_CONTROL_LINE:
                return
        bulk, pos, size = self.bulk, 0, len(buf)
        sid_now = -1
        pending: list[Delivery] = []  # consecutive deliveries for one bulk subscription
        try:
            while pos < size:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                op = buf[pos]
                if op == 72 or op == 77:  # H(MSG) / M(SG)
                    args = bytes(buf[pos:eol]).split()
                    if args[0] == b"HMSG" and len(args) in (5, 6):
                        subject, sid, hlen, tlen = args[1], int(args[2]), int(args[-2]), int(args[-1])
                        reply = args[3] if len(args) == 6 else b""
                    elif args[0] == b"MSG" and len(args) in (4, 5):
                        subject, sid, hlen, tlen = args[1], int(args[2]), 0, int(args[-1])
                        reply = args[3] if len(args) == 5 else b""
                    else:
                        raise ProtocolError("nats: malformed MSG")
                    start = eol + 2
                    stop = start + tlen
                    if stop + 2 > size:
                        break  # the rest of this message is still on its way
                    hdr = bytes(buf[start : start + hlen]) if hlen else None
                    payload = bytes(buf[start + hlen : stop])
                    pos = stop + 2
                    if sid in bulk:
                        if sid != sid_now and pending:
                            await bulk[sid_now](pending)
                            pending = []
                        sid_now = sid
                        pending.append((subject, reply, hdr, payload))
                        continue
                    if pending:
                        await bulk[sid_now](pending)
                        pending = []
                    await self.nc._process_msg(sid, subject, reply, payload, hdr)  # pyright: ignore[reportArgumentType, reportPrivateUsage] - nats-py passes None for no headers itself; the parser's own door into the client
                    continue
                line = bytes(buf[pos : eol + 2])
                if line.startswith(b"INFO") or line.startswith(b"-ERR") or op in (43, 80):  # +OK, PING/PONG
                    pos = eol + 2
                    if pending:
                        await bulk[sid_now](pending)
                        pending = []
                    self.buf = bytearray(line)
                    try:
                        await super().parse()
                    finally:
                        self.buf = buf
                    continue
                raise ProtocolError("nats: unknown protocol")
        finally:
            del buf[:pos]
        if pending and sid_now in bulk:
            await bulk[sid_now](pending)


def sid_of(sub: Subscription) -> int:
    """The subscription id the server puts in each MSG line (what `_FastParser.bulk` is keyed by)."""
    return sub._id  # pyright: ignore[reportPrivateUsage] - nats-py has no public name for it


def fast_parser(nc: NATS) -> _FastParser:
    """The connection's parser, replaced once by `_FastParser` (which takes over its buffer and state)."""
    current = nc._ps  # pyright: ignore[reportPrivateUsage] - the parser nats-py reads the socket with
    if isinstance(current, _FastParser):
        return current
    fast = _FastParser(nc)
    fast.buf, fast.state, fast.needed = current.buf, current.state, current.needed
    fast.header_needed, fast.msg_arg = current.header_needed, current.msg_arg
    nc._ps = fast  # pyright: ignore[reportPrivateUsage] - replaced in place (nats-py has no public hook)
    return fast


__all__ = ["Delivery", "fast_parser", "parse_ack_reply", "parse_headers", "sid_of"]
