"""The fast path and the reference implementation give the same logits on the same weights.

Tolerance: float32, atol 1e-5 / rtol 1e-4 (SDPA vs written-out attention, stacked vs
per-expert LoRA matmuls, one batched pass vs per-modality passes).
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
    ("m", "options"),
    [
        (2, {}),
        (3, {}),
        (3, {"static_mode": "pass", "experts": 3, "top_k": 2}),
        (2, {"no_modality_specific": True, "placement": "head", "layers": 3}),
    ],
)
def test_fast_path_matches_reference(m, options):
    model, inputs, available = setup(m, **options)
    with torch.no_grad():
        fast = model(inputs, available).logits
        ref = ReferenceModel(model)(inputs, available).logits
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-4)
    assert fast.abs().max() > 1e-3  # not trivially zero


def test_reference_gradients_match():
    model, inputs, available = setup(2)
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
