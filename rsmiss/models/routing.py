"""Routing statistics: what the expert routers do, per adapted block and per missing pattern.

The paper's claim is that MaMOL's router treats missing patterns as tasks. A recorder makes
that visible from the *same* forward pass that produces the evaluation predictions (no
second pass, nothing recorded while training unless a caller asks):

    with record_routing(model) as recorder:
        logits = model(inputs, available).logits      # any number of batches
    stats = recorder.summary(pattern_names, static_names)

Adapters report through the pass context, one call per forward, and never know where they
sit (the recorder names them by block index; adapters it does not know are numbered in the
order they first report):

    ctx.record_routing(self, gates, chosen, static=None)

``gates`` (rows, tokens, experts) are the router's probabilities (softmax, before top-k),
``chosen`` the same shape, non-zero where a token is sent to an expert, ``static`` (rows,
static experts) the static coefficients of each row (MaMOL). An adapter without a router
records nothing; the call is a no-op unless a caller records.

Unit: **tokens**. Every token of every encoder pass (one pass per present modality of a
sample, class token included) counts once, under the missing pattern of its sample. Per
(block, pattern) the summary holds:

- ``share[e]``: fraction of the pattern's routing slots (tokens x top-k) that went to expert
  e; sums to 1. A dense gate (moe_task) counts its arg-max expert.
- ``mean_gate[e]``: mean router probability of expert e over the tokens; sums to 1.
- ``entropy``: mean per-token entropy of the router probabilities, in bits (0 = one
  expert certain, log2(experts) = uniform).
- ``static_on[name]``: fraction of the pattern's encoder passes in which that static
  expert's coefficient was non-zero (MaMOL: the shared one always; a modality's one when
  the sample has it, or with ``static_mode=pass`` when the pass encodes it).

Pattern separation: the Jensen-Shannon divergence (base 2, in [0, 1]) between two
patterns' ``share`` vectors, averaged over every pair of patterns seen and then over
blocks (``separation.overall``); ``separation.by_pattern[p]`` averages the divergences of p
against every other pattern, over blocks. 0 = every pattern is routed alike, 1 = patterns
use disjoint experts. ``collapsed`` is true when in every block one expert takes at least
95 % of every pattern's share (the router ignores both the token and the pattern).

Under ``torch.compile`` the adapters only append their tensors to the pass context (no
graph break, one graph for recording evaluation); the classifier hands them to the
recorder after the blocks. Accumulators stay on the model's device as integers (see
``FIXED``), so the statistics do not depend on batch order, thread count or number of
ranks; the summary rounds counted quantities to 6 decimals like the other metrics, mean
gates and entropies to 3 (``GATE_DECIMALS``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

COLLAPSE_SHARE = 0.95
"""An expert taking at least this share of every pattern in every block is a collapse."""

DECIMALS = 6
"""Decimals of counted quantities (shares of tokens, static experts on, separation)."""

GATE_DECIMALS = 3
"""Decimals of the mean gates and entropies. These average float32 router outputs, whose
last bits can differ between two processes on a CPU (BLAS kernels depend on memory
alignment) although every prediction and every share is identical; at 6 decimals such a
difference shows in metrics.json now and then (measured: a kill -9 + resume run differed
from the reference in the 6th decimal of two entropies), at 3 it practically never does."""


class RoutingRecorder:
    """Sums of routing statistics per (adapted block, missing pattern); see the module doc."""

    def __init__(self, n_patterns: int, sites: dict[int, int] | None = None) -> None:
        self.n_patterns = n_patterns
        self.sites = dict(sites or {})  # id(adapter) -> block index
        self._acc: dict[int, dict[str, torch.Tensor]] = {}

    @classmethod
    def for_model(cls, model: nn.Module) -> RoutingRecorder:
        """A recorder that names the FFN adapters of ``model``'s tower by block index."""
        blocks = model.backbone.transformer.resblocks
        sites = {id(b.ffn_adapter): i for i, b in enumerate(blocks) if b.ffn_adapter is not None}
        return cls(model.n_patterns, sites)

    @torch.no_grad()
    def record(
        self,
        adapter: nn.Module,
        pattern: torch.Tensor,
        gates: torch.Tensor,
        chosen: torch.Tensor,
        static: torch.Tensor | None = None,
    ) -> None:
        """Add one forward's routing of ``adapter``: pattern (N,), gates / chosen (N, L, E),
        static (N, S) or None."""
        block = self.sites.setdefault(id(adapter), len(self.sites))
        n, length, _ = gates.shape
        p = gates.double()
        entropy = -(p * torch.log2(p.clamp_min(1e-30))).sum(-1, keepdim=True)  # (N, L, 1)
        ones = torch.ones(n, 1, dtype=torch.int64, device=p.device)
        rows = {
            "tokens": ones * length,
            "slots": (chosen != 0).long().sum(1),
            "gate": _fixed(p).sum(1),
            "entropy": _fixed(entropy).sum(1),
            "passes": ones,
        }
        if static is not None:
            rows["static"] = (static != 0).long()
        acc = self._acc.setdefault(block, {})
        index = pattern.long().to(p.device)
        for key, value in rows.items():
            if key not in acc:
                acc[key] = value.new_zeros(self.n_patterns, value.shape[1])
            acc[key].index_add_(0, index, value)

    def consume(self, records: list[tuple]) -> None:
        """Record what the adapters of one forward left in ``PassContext.routing``."""
        for adapter, pattern, gates, chosen, static in records:
            self.record(adapter, pattern, gates, chosen, static)

    def all_reduce(self) -> None:
        """Sum the accumulators over the ranks of a process group (DDP evaluation)."""
        import torch.distributed as dist

        for block in sorted(self._acc):
            for key in sorted(self._acc[block]):
                dist.all_reduce(self._acc[block][key])

    @property
    def empty(self) -> bool:
        return not self._acc

    def summary(
        self, pattern_names: Sequence[str], static_names: Sequence[str] | None = None
    ) -> dict[str, Any] | None:
        """The documented ``routing`` entry of ``metrics.json`` (None when nothing routed).

        ``pattern_names[i]`` names pattern index i (``pattern_index``); ``static_names``
        names MaMOL's static experts (shared first).
        """
        if self.empty:
            return None
        blocks = []
        for block in sorted(self._acc):
            acc = {k: v.cpu().double() for k, v in self._acc[block].items()}
            acc["gate"] /= FIXED
            acc["entropy"] /= FIXED
            by_pattern = {}
            for i, name in enumerate(pattern_names):
                tokens = float(acc["tokens"][i, 0])
                if tokens == 0:
                    continue
                slots = acc["slots"][i]
                entry: dict[str, Any] = {
                    "tokens": int(tokens),
                    "passes": int(acc["passes"][i, 0]),
                    "share": _round(slots / max(float(slots.sum()), 1e-30)),
                    "mean_gate": _round(acc["gate"][i] / tokens, GATE_DECIMALS),
                    "entropy": round(float(acc["entropy"][i, 0]) / tokens, GATE_DECIMALS),
                }
                if "static" in acc:
                    on = acc["static"][i] / float(acc["passes"][i, 0])
                    names = list(static_names or [])[: len(on)]
                    names += [f"static{j}" for j in range(len(names), len(on))]
                    entry["static_on"] = dict(zip(names, _round(on), strict=True))
                by_pattern[name] = entry
            blocks.append({"block": block, "by_pattern": by_pattern})
        shares = [{p: e["share"] for p, e in b["by_pattern"].items()} for b in blocks]
        return {
            "unit": "tokens",
            "experts": len(next(iter(blocks[0]["by_pattern"].values()))["share"]),
            "patterns": [p for p in pattern_names if any(p in s for s in shares)],
            "blocks": blocks,
            "separation": separation(shares),
            "collapsed": collapsed(shares),
        }


FIXED = 2**24
"""Per-token gates and entropies are summed as integers in units of 1 / FIXED: integer sums
do not depend on the order of the additions (batches, threads, ranks, atomics), so the
statistics are bit-identical wherever they are computed; 2^-24 is far below the 6 decimals
kept."""


def _fixed(x: torch.Tensor) -> torch.Tensor:
    return torch.round(x * FIXED).long()


def _round(t: torch.Tensor, decimals: int = DECIMALS) -> list[float]:
    return [round(float(x), decimals) for x in t]


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two distributions, base 2 (0 = same, 1 = disjoint)."""

    def kl(a: Sequence[float], b: Sequence[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, b, strict=True) if x > 0)

    m = [(x + y) / 2 for x, y in zip(p, q, strict=True)]
    return max(0.0, 0.5 * kl(p, m) + 0.5 * kl(q, m))


def separation(shares: Sequence[dict[str, Sequence[float]]]) -> dict[str, Any]:
    """Pattern separation of per-block ``{pattern: share}`` maps (module doc); None where
    fewer than two patterns were seen."""
    per_block, per_pattern = [], {}
    for block in shares:
        names = list(block)
        if len(names) < 2:
            continue
        pairs = {
            (a, b): js_divergence(block[a], block[b]) for a, b in itertools.combinations(names, 2)
        }
        per_block.append(sum(pairs.values()) / len(pairs))
        for name in names:
            mine = [v for (a, b), v in pairs.items() if name in (a, b)]
            per_pattern.setdefault(name, []).append(sum(mine) / len(mine))
    if not per_block:
        return {"overall": None, "by_block": [], "by_pattern": {}}
    return {
        "overall": round(sum(per_block) / len(per_block), DECIMALS),
        "by_block": [round(x, DECIMALS) for x in per_block],
        "by_pattern": {p: round(sum(v) / len(v), DECIMALS) for p, v in sorted(per_pattern.items())},
    }


def collapsed(shares: Sequence[dict[str, Sequence[float]]], limit: float = COLLAPSE_SHARE) -> bool:
    """True when in every block one expert takes >= ``limit`` of every pattern's share."""
    if not shares or not any(shares):
        return False
    for block in shares:
        if not block:
            continue
        n = len(next(iter(block.values())))
        if not any(all(s[e] >= limit for s in block.values()) for e in range(n)):
            return False
    return True


@contextmanager
def record_routing(model: nn.Module, enabled: bool = True) -> Iterator[RoutingRecorder | None]:
    """Attach a fresh recorder to ``model`` for the duration of the block (None if disabled)."""
    if not enabled:
        yield None
        return
    recorder = RoutingRecorder.for_model(model)
    previous = getattr(model, "routing_recorder", None)
    model.routing_recorder = recorder
    try:
        yield recorder
    finally:
        model.routing_recorder = previous
