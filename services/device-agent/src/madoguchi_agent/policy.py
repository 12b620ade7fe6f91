"""The agent's policy: central configuration on the bus, cached locally so the agent works offline.

The policy itself (what it holds, its defaults, the bucket and its keys, how a change is recorded)
is defined once in madoguchi_shared.device_policy, for the agent, `madoguchi policy` (policy_cli.py)
and the console's policy screen. Here: every policy the agent applies is written to a local JSON
cache (atomically, fsynced) so that a PC that boots without a link enforces the last policy it
knew, not the built-in one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from madoguchi_shared.device_policy import (  # noqa: F401 - the agent's modules import them from here
    BUCKET,
    DEFAULT_ALLOW,
    DEFAULT_FOLDERS,
    AllowRule,
    LoadedPolicy,
    Policy,
    WatchedFolder,
    default_policy,
    fetch,
    from_bytes,
    policy_digest,
    publish,
)


def load_cache(path: Path) -> LoadedPolicy | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        policy = Policy.model_validate(data["policy"])
        return LoadedPolicy(policy, int(data["version"]), policy_digest(policy), "cache")
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_cache(path: Path, loaded: LoadedPolicy) -> None:
    """Write atomically: a power cut leaves the old cache or the new one, never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(loaded.as_cache(), f, ensure_ascii=False, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
