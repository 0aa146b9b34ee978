"""Property tests of the allocation: exact totals, even spread over classes, M = 2 and 3."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rsmiss.scenarios import (
    allocate_split,
    apportion,
    availability_setting,
    controlled_round,
    pattern_setting,
)

MODS = {2: ("hs", "lidar"), 3: ("hs", "sar", "lidar")}
FAST = settings(max_examples=60, deadline=None)


def floor_ceil(count: int, target: Fraction) -> bool:
    return (
        target.numerator // target.denominator
        <= count
        <= -(-target.numerator // target.denominator)
    )


@st.composite
def settings_(draw):
    """A random setting: pattern name at a random 2-decimal rate, or an availability."""
    m = draw(st.sampled_from([2, 3]))
    mods = MODS[m]
    names = ["all", "all-subsets", *mods] + (["other", "both"] if m == 2 else [])
    if draw(st.booleans()):
        rate = draw(st.integers(0, 100)) / 100
        return pattern_setting(draw(st.sampled_from(names)), rate, mods)
    lack = draw(
        st.lists(st.integers(0, 100), min_size=m, max_size=m).filter(lambda x: sum(x) <= 100)
    )
    return availability_setting({md: 1 - x / 100 for md, x in zip(mods, lack, strict=True)}, mods)


class_counts = st.lists(st.integers(1, 40), min_size=1, max_size=6)


@FAST
@given(st.lists(st.integers(0, 50), min_size=1, max_size=6), st.integers(0, 500), st.integers(0, 9))
def test_apportion_exact(weights, n, seed):
    total = sum(weights)
    if total == 0:
        weights, total = [1], 1
    fractions = [Fraction(w, total) for w in weights]
    counts = apportion(fractions, n, np.random.default_rng(seed))
    assert counts.sum() == n
    for c, f in zip(counts, fractions, strict=True):
        assert floor_ceil(int(c), f * n)


@FAST
@given(class_counts, st.lists(st.integers(0, 30), min_size=1, max_size=5))
def test_controlled_round_keeps_margins(rows, col_weights):
    n = sum(rows)
    cols = apportion([Fraction(w + 1, sum(col_weights) + len(col_weights)) for w in col_weights], n)
    table = controlled_round(np.array(rows), cols)
    assert (table.sum(1) == rows).all() and (table.sum(0) == cols).all()
    for c, r in enumerate(rows):
        for k, q in enumerate(cols):
            assert floor_ceil(int(table[c, k]), Fraction(r * int(q), n))


@FAST
@given(settings_(), class_counts, st.integers(0, 2**32 - 1))
def test_allocation_exact_and_even(setting, sizes, seed):
    labels = np.repeat(np.arange(1, len(sizes) + 1), sizes)
    labels = np.random.default_rng(seed).permutation(labels)
    n, k = len(labels), len(setting.fractions)
    alloc = allocate_split(labels, setting.missing, setting.fractions, np.random.default_rng(seed))
    avail = alloc.available
    assert avail.shape == (n, len(setting.modalities))
    assert avail.any(1).all()  # no sample lacks every modality
    # per pattern exact: ⌊f n⌋ or ⌈f n⌉, and the total is the rounded rate
    codes = [tuple(row) for row in ~avail]
    for j in range(k):
        got = sum(c == tuple(setting.missing[j]) for c in codes)
        assert got == alloc.counts[j]
        assert floor_ceil(got, setting.fractions[j] * n)
    assert floor_ceil(int((~avail).any(1).sum()), setting.rate * n)
    # per class: each pattern within one sample of the class's proportional share
    for c, size in enumerate(sizes, start=1):
        in_class = [code for code, lab in zip(codes, labels, strict=True) if lab == c]
        for j in range(k):
            got = sum(code == tuple(setting.missing[j]) for code in in_class)
            assert floor_ceil(got, Fraction(size * int(alloc.counts[j]), n))


@FAST
@given(settings_(), class_counts, st.integers(0, 2**32 - 1), st.integers(0, 60))
def test_unobserved_stay_missing_and_count(setting, sizes, seed, pct):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    n, m = len(labels), len(setting.modalities)
    unobserved = rng.random((n, m)) < pct / 100 / m
    unobserved[unobserved.all(1), 0] = False  # the cube observes something in each sample
    alloc = allocate_split(labels, setting.missing, setting.fractions, rng, unobserved=unobserved)
    lacks = ~alloc.available
    assert (lacks[unobserved]).all()  # never made available
    quota = int(alloc.counts[:-1].sum())
    forced = int(unobserved.any(1).sum())
    assert lacks.any(1).sum() == max(quota, forced)
    assert alloc.excess == max(0, forced - quota)
    assert alloc.available.any(1).all()
