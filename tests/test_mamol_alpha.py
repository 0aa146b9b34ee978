"""MaMOL's LoRA scaling as an option (``alpha``): the default is the paper's scaling of 1
(alpha = rank), and alpha scales every expert's update linearly, at both expert sites."""

from __future__ import annotations

import pytest
import torch

from rsmiss.errors import ConfigError
from rsmiss.models import build_model

P = 3
MODS = {"hs": 6, "lidar": 1}


def _model(method: str, **options):
    """Tiny model with only the last block adapted and random (non-zero) LoRA B."""
    torch.manual_seed(0)
    model = build_model(
        method, 4, MODS, backbone="tiny", random_init=True, patch_size=P, layers=1, **options
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0, 0.05)
    return model.eval()


def _last_block_output(model, x, avail) -> torch.Tensor:
    """The CLS token leaving the last (the only adapted) block: ln_post's input."""
    seen = []
    handle = model.backbone.ln_post.register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    with torch.no_grad():
        model(x, avail)
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("method", ["mamol", "mamol_ffn"])
def test_alpha_scales_the_expert_update_linearly(method):
    g = torch.Generator().manual_seed(0)
    x = {k: torch.randn(5, c, P, P, generator=g) for k, c in MODS.items()}
    avail = torch.tensor([[True, True], [True, False], [False, True], [True, True], [True, False]])
    default = _model(method)
    frozen = _model(method)
    with torch.no_grad():
        for name, p in frozen.named_parameters():
            if name.endswith("lora_B"):
                p.zero_()
    base = _last_block_output(frozen, x, avail)
    out = {a: _last_block_output(_model(method, alpha=a), x, avail) for a in (8.0, 16.0)}
    torch.testing.assert_close(_last_block_output(default, x, avail), out[8.0])  # alpha = rank
    delta8, delta16 = out[8.0] - base, out[16.0] - base
    assert delta8.abs().max() > 1e-4  # the experts do change the block's output
    if method == "mamol":  # beside the FFN the block's update is linear in the scaling
        torch.testing.assert_close(delta16, 2.0 * delta8, atol=1e-5, rtol=0)
    else:  # on the FFN's linears the c_fc update passes the activation: larger, not 2x
        assert delta16.norm() > 1.5 * delta8.norm()


def test_alpha_must_be_positive():
    with pytest.raises(ConfigError, match="alpha"):
        build_model("mamol", 4, MODS, backbone="tiny", random_init=True, patch_size=P, alpha=0)
