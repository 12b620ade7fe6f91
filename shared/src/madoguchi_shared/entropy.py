"""Random bytes for ids (event ids, request and correlation ids) from a pool read from os.urandom.

Every command makes several ids, and each `os.urandom(n)` is a getrandom system call (about 1 us
here, six of them per calls command: measured with `strace -c` under the bench's load). The pool
reads 4 KiB at a time from the same source, so the bytes are the kernel's CSPRNG output as before,
handed out once each. A forked child starts with an empty pool (`os.register_at_fork`), so a parent
and its child never hand out the same bytes.
"""

from __future__ import annotations

import os
from uuid import UUID, SafeUUID

POOL_SIZE = 4096

_pool = b""
_at = 0


def _forget() -> None:
    global _pool, _at
    _pool, _at = b"", 0


os.register_at_fork(after_in_child=_forget)


def take(n: int) -> bytes:
    """`n` random bytes (as `os.urandom(n)`), none ever given out twice."""
    global _pool, _at
    end = _at + n
    if end > len(_pool):
        if n > POOL_SIZE:
            return os.urandom(n)
        _pool, _at, end = os.urandom(POOL_SIZE), 0, n
    out = _pool[_at:end]
    _at = end
    return out


def random_int(bits: int) -> int:
    """A random integer of `bits` bits (a multiple of 8)."""
    return int.from_bytes(take(bits // 8))


_new = object.__new__
_set = object.__setattr__


def uuid_from_int(value: int) -> UUID:
    """`UUID(int=value)` for a 128-bit value the caller built (version and variant set), without
    `UUID.__init__`'s argument checks in Python (a fifth of the cost)."""
    u = _new(UUID)
    _set(u, "int", value)
    _set(u, "is_safe", SafeUUID.unknown)
    return u


__all__ = ["take", "random_int", "uuid_from_int"]
