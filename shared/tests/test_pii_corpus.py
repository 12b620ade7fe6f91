"""The false-refusal budget and the hostile-spelling rates of the personal-data guard, measured on
two seeded corpora (pii_corpus.py): at least 1,000 hostile spellings per class (My Number, phone,
e-mail) and 1,000 ordinary desk texts. Two seeds, so the detector is not tuned to one draw.

The same figures are printed by ``python shared/tests/pii_corpus.py 3000 14``.
"""

from __future__ import annotations

import pytest

from madoguchi_shared.pii import find_personal_data
from pii_corpus import HOSTILE, hostile_corpus, ordinary_corpus

N = 1200


@pytest.mark.parametrize("seed", [14, 2026])
@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_spellings_refused(kind: str, seed: int) -> None:
    texts = hostile_corpus(kind, N, seed)
    assert len(set(texts)) > N * 0.95  # a real corpus, not one text repeated
    missed = [t for t in texts if not find_personal_data(t)]
    rate = 1 - len(missed) / N
    assert rate >= 0.995, f"{kind}: {rate:.2%} refused; missed e.g. {missed[:5]!r}"
    # the kind is named correctly for (nearly) all of them
    expected = {"my_number": {"my_number", "twelve_digits"}, "phone": {"phone"}, "email": {"email"}}[kind]
    named = sum(1 for t in texts if {f.kind for f in find_personal_data(t)} & expected)
    assert named / N >= 0.95


@pytest.mark.parametrize("seed", [14, 2026])
def test_ordinary_writing_passes(seed: int) -> None:
    texts = ordinary_corpus(N, seed)
    assert len(set(texts)) > N * 0.95
    wrong = [t for t in texts if find_personal_data(t)]
    assert len(wrong) / N <= 0.01, f"{len(wrong)} of {N} refused, e.g. {wrong[:5]!r}"
