"""pyright over the tree, gated on a baseline of the type errors already known (make lint).

Exit 1 on any error not in pyright-baseline.json (a new one, or one more of a kind already there);
the known ones are listed with their counts, file by file, so they can only shrink. `--update`
rewrites the baseline from the current tree (run it after fixing some; never to hide a new one).
An error is keyed by file, rule and the first line of its message (not its line number, so edits
above it do not make it new).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "pyright-baseline.json"


def _errors() -> Counter[tuple[str, str, str]]:
    run = subprocess.run([str(ROOT / ".venv/bin/pyright"), "--outputjson"], cwd=ROOT, capture_output=True, text=True)
    try:
        report = json.loads(run.stdout)
    except json.JSONDecodeError:
        sys.exit(f"pyright did not report (exit {run.returncode}):\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    found: Counter[tuple[str, str, str]] = Counter()
    for d in report["generalDiagnostics"]:
        if d["severity"] == "error":
            path = Path(d["file"]).resolve().relative_to(ROOT).as_posix()
            found[(path, d.get("rule", "-"), d["message"].splitlines()[0])] += 1
    return found


def main() -> int:
    started = time.monotonic()
    found = _errors()
    if "--update" in sys.argv:
        rows = [{"file": f, "rule": r, "message": m, "count": n} for (f, r, m), n in sorted(found.items())]
        BASELINE.write_text(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")
        print(f"pyright: baseline rewritten with {sum(found.values())} known errors")
        return 0
    known: Counter[tuple[str, str, str]] = Counter()
    if BASELINE.exists():
        for row in json.loads(BASELINE.read_text()):
            known[(row["file"], row["rule"], row["message"])] = row["count"]
    new = found - known
    gone = known - found
    for (f, r, m), n in sorted(new.items()):
        print(f"{f}: error ({r}): {m}" + (f"  [{n} more than known]" if known[(f, r, m)] else ""))
    took = time.monotonic() - started
    print(
        f"pyright: {sum(found.values())} errors, {sum(known.values())} known in the baseline, "
        f"{sum(new.values())} new, {sum(gone.values())} fixed ({took:.0f} s)"
    )
    if gone:
        print("fixed since the baseline: shrink it with `.venv/bin/python scripts/typecheck.py --update`")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
