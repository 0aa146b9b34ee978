"""Exact allocation of missing patterns over the samples of one split (pure numpy).

Counts come first and are exact: the largest-remainder method over the whole split gives
each pattern ⌊f n⌋ or ⌈f n⌉ samples. They are then spread over the classes by controlled
rounding, so every (class, pattern) cell gets ⌊n_c r_k / N⌋ or ⌈n_c r_k / N⌉ samples —
"as evenly as the counts allow" (a class of 7 pixels cannot see every pattern). Only then
does randomness (or a smooth field, for ``--spatial``) pick *which* samples of a class get
each pattern.

Samples the cube records as not observed for a modality keep it missing. They count toward
the rate: each consumes the quota of the pattern it matches (or the nearest one with quota
left), and only the remaining quota is spread over the others. When such samples outnumber
the whole quota they still stay missing, and the split's missing rate ends above η
(reported as ``excess``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


def apportion(
    fractions: list[Fraction], n: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Largest remainder: integers summing to ``round(sum(fractions) * n)`` exactly.

    With fractions summing to 1 the result sums to ``n`` and each entry is ⌊f n⌋ or ⌈f n⌉.
    Ties between equal remainders are broken by ``rng`` (else by position).
    """
    exact_shares = [f * n for f in fractions]
    floors = np.array([s.numerator // s.denominator for s in exact_shares], dtype=np.int64)
    total = sum(exact_shares, Fraction(0))
    target = int(total.numerator // total.denominator)
    if total - target >= Fraction(1, 2):
        target += 1
    left = target - int(floors.sum())
    if left > 0:
        remainders = [s - int(fl) for s, fl in zip(exact_shares, floors, strict=True)]
        tie = rng.permutation(len(fractions)) if rng is not None else np.arange(len(fractions))
        order = sorted(range(len(fractions)), key=lambda i: (-remainders[i], tie[i]))
        floors[order[:left]] += 1
    return floors


def controlled_round(row_totals: np.ndarray, col_totals: np.ndarray) -> np.ndarray:
    """Integer table with the given row and column sums, each cell ⌊t⌋ or ⌈t⌉ of its target.

    The target of cell (c, k) is ``row_c * col_k / N``. The fractional residues form a
    feasible fractional flow, so an integral one exists (total unimodularity); a max flow
    over the cells with a non-zero residue finds it.
    """
    rows = np.asarray(row_totals, dtype=np.int64)
    cols = np.asarray(col_totals, dtype=np.int64)
    n = int(rows.sum())
    if n != int(cols.sum()):
        raise ValueError("row and column totals differ")
    if n == 0:
        return np.zeros((len(rows), len(cols)), dtype=np.int64)
    prod = rows[:, None] * cols[None, :]
    table = prod // n
    frac = (prod % n) != 0
    need_rows = rows - table.sum(1)
    need_cols = cols - table.sum(0)
    if need_rows.sum() == 0:
        return table
    from scipy.sparse import csr_array
    from scipy.sparse.csgraph import maximum_flow

    n_r, n_c = len(rows), len(cols)
    src, sink = 0, 1 + n_r + n_c
    ci, ki = np.nonzero(frac)
    heads = np.concatenate([np.zeros(n_r, int), 1 + ci, 1 + n_r + np.arange(n_c)])
    tails = np.concatenate([1 + np.arange(n_r), 1 + n_r + ki, np.full(n_c, sink)])
    caps = np.concatenate([need_rows, np.ones(len(ci), np.int64), need_cols]).astype(np.int32)
    graph = csr_array((caps, (heads, tails)), shape=(sink + 1, sink + 1))
    result = maximum_flow(graph, src, sink, method="dinic")
    if result.flow_value != int(need_rows.sum()):  # pragma: no cover - impossible by theory
        raise RuntimeError("controlled rounding found no integral table")
    flow = result.flow.toarray()[1 : 1 + n_r, 1 + n_r : 1 + n_r + n_c]
    return table + np.clip(flow, 0, 1)


@dataclass(frozen=True)
class Allocation:
    """Availability of one split (n x M, True = available) and what could not be honoured."""

    available: np.ndarray
    counts: np.ndarray  # samples per missing pattern (quota), complete last
    unobserved: int  # samples the cube records as not observed for some modality
    excess: int  # of those, how many exceeded the missing quota
    none_observed: int  # samples the cube observed in no modality at all
    unmatched: int = 0  # unobserved samples whose gaps match no requested pattern


def allocate_split(
    labels: np.ndarray,
    missing: np.ndarray,
    fractions: list[Fraction] | tuple[Fraction, ...],
    rng: np.random.Generator,
    *,
    unobserved: np.ndarray | None = None,
    scores: np.ndarray | None = None,
) -> Allocation:
    """Give each sample of one split a missing pattern.

    ``missing`` is K x M (True = missing) with exact ``fractions`` (sum ≤ 1; the rest is
    complete). ``unobserved`` (n x M) marks modalities the cube lacks. ``scores`` (n x K),
    when given, replaces the random choice within a class: pattern k goes to the samples
    with the highest score k (a smooth field gives contiguous blobs).
    """
    labels = np.asarray(labels)
    missing = np.asarray(missing, dtype=bool)
    n, (k, m) = len(labels), missing.shape
    if unobserved is None:
        unobserved = np.zeros((n, m), dtype=bool)
    unobserved = np.asarray(unobserved, dtype=bool)
    complete_share = Fraction(1) - sum(fractions, Fraction(0))
    quota = apportion([*fractions, complete_share], n, rng)[:k]

    # Samples the cube did not observe: they keep exactly what they lack and use up quota.
    forced = unobserved.any(1)
    consumed = np.zeros(k, dtype=np.int64)
    excess = unmatched = 0
    groups, group_size = np.unique(unobserved[forced], axis=0, return_counts=True)
    pending: list[tuple[np.ndarray, int]] = []
    for lack, size in zip(groups, group_size, strict=True):
        same = np.flatnonzero((missing == lack).all(1))
        unmatched += 0 if len(same) else int(size)
        take = min(int(size), int(quota[same[0]])) if len(same) else 0
        if take:
            consumed[same[0]] += take
        if size - take:
            pending.append((lack, int(size - take)))
    for lack, size in pending:
        left = size
        overlap = (missing & lack).sum(1)
        for j in sorted(range(k), key=lambda j: (-overlap[j], j)):
            take = min(left, int(quota[j] - consumed[j]))
            consumed[j] += take
            left -= take
        excess += left

    free = np.flatnonzero(~forced)
    remaining = quota - consumed
    classes, class_of = np.unique(labels[free], return_inverse=True)
    class_sizes = np.bincount(class_of, minlength=len(classes))
    col_totals = np.append(remaining, len(free) - remaining.sum())
    table = controlled_round(class_sizes, col_totals)

    pattern_of = np.full(n, k, dtype=np.int64)  # k = complete
    for c in range(len(classes)):
        pool = free[class_of == c]
        if scores is None:
            pool = pool[rng.permutation(len(pool))]
            pattern_of[pool] = np.repeat(np.arange(k + 1), table[c])
            continue
        for j in range(k):
            if table[c, j] == 0:
                continue
            # highest score first; ties by sample index, so the order is platform-independent
            order = np.lexsort((pool, -scores[pool, j]))
            chosen = pool[order[: table[c, j]]]
            pattern_of[chosen] = j
            pool = np.setdiff1d(pool, chosen)

    lacks = np.vstack([missing, np.zeros((1, m), dtype=bool)])[pattern_of]
    lacks[forced] = unobserved[forced]
    return Allocation(
        available=~lacks,
        counts=np.append(quota, n - quota.sum()),
        unobserved=int(forced.sum()),
        excess=int(excess),
        none_observed=int(unobserved.all(1).sum()) if m else 0,
        unmatched=unmatched,
    )
