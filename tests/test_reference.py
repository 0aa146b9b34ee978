"""The fast path and the reference implementation give the same logits on the same weights.

Tolerance: float32, atol 1e-5 / rtol 1e-4 (SDPA vs written-out attention, stacked vs
per-expert LoRA matmuls, one batched pass vs per-modality passes). MaMOL at both expert
sites: `mamol` (beside the FFN) and `mamol_ffn` (LoRA pairs on the FFN's linears).
"""

from __future__ import annotations

import itertools

import pytest
import torch

from rsmiss.models import build_model
from rsmiss.models.reference import ReferenceModel


def setup(m: int, method: str = "mamol", **options):
    mods = dict(list({"hs": 6, "lidar": 1, "sar": 2}.items())[:m])
    torch.manual_seed(0)
    model = build_model(
        method, 5, mods, backbone="tiny", random_init=True, patch_size=6, **options
    ).eval()
    with torch.no_grad():  # non-zero B so every expert matters
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0, 0.05)
    rows = [r for r in itertools.product([True, False], repeat=m) if any(r)]
    available = torch.tensor(rows).repeat(2, 1)
    g = torch.Generator().manual_seed(1)
    inputs = {k: torch.randn(len(available), c, 6, 6, generator=g) for k, c in mods.items()}
    return model, inputs, available


@pytest.mark.parametrize(
    ("m", "method", "options"),
    [
        (2, "mamol", {}),
        (3, "mamol", {}),
        (3, "mamol", {"static_mode": "pass", "experts": 3, "top_k": 2}),
        (2, "mamol", {"no_modality_specific": True, "placement": "first", "layers": 3}),
        (2, "mamol_ffn", {}),
        (3, "mamol_ffn", {}),
        (3, "mamol_ffn", {"static_mode": "pass", "experts": 3, "top_k": 2}),
        (2, "mamol_ffn", {"no_modality_specific": True, "placement": "first", "layers": 3}),
        (2, "mamol_ffn", {"no_static": True, "top_k": 2}),
        (2, "mamol_ffn", {"no_dynamic": True}),
    ],
)
def test_fast_path_matches_reference(m, method, options):
    model, inputs, available = setup(m, method, **options)
    with torch.no_grad():
        fast = model(inputs, available).logits
        ref = ReferenceModel(model)(inputs, available).logits
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    assert fast.abs().max() > 1e-3  # not trivially zero


@pytest.mark.parametrize("method", ["mamol", "mamol_ffn"])
def test_reference_gradients_match(method):
    model, inputs, available = setup(2, method)
    grads = []
    for forward in (model, ReferenceModel(model)):
        model.zero_grad()
        forward(inputs, available).logits.square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for name, g in grads[0].items():
        torch.testing.assert_close(g, grads[1][name], atol=1e-4, rtol=1e-3, msg=name)


def test_baseline_matches_reference_and_rejects_other_methods():
    model, inputs, available = setup(2, "baseline")
    with torch.no_grad():
        torch.testing.assert_close(
            model(inputs, available).logits,
            ReferenceModel(model)(inputs, available).logits,
            atol=1e-5,
            rtol=1e-4,
        )
    with pytest.raises(TypeError):
        ReferenceModel(setup(2, "moe_ada")[0])
