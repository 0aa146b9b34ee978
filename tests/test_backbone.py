"""Backbone weights: one loading path (state dict, bare visual, safetensors, local-dir,
TorchScript), strict keys, and features identical to open_clip's own ViT-B/16."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from rsmiss.errors import ConfigError, DataError
from rsmiss.models import build_model
from rsmiss.models.backbone import BACKBONES, VisionTower, load_backbone_weights

MODS = {"hs": 4, "lidar": 1}


def tiny_state() -> dict[str, torch.Tensor]:
    tower = VisionTower(BACKBONES["tiny"])
    with torch.no_grad():  # weights that differ from the seeded random init
        for p in tower.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(7)))
    return tower.state_dict()


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_vit_b16_matches_open_clip(tmp_path):
    open_clip = pytest.importorskip("open_clip")
    torch.manual_seed(0)
    ref = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None).eval()
    full = tmp_path / "clip_full.pt"
    torch.save(ref.state_dict(), full)
    model = build_model("mamol", 15, {"hs": 144, "lidar": 1}, backbone_weights=full)
    assert model.config["backbone_hash"] == sha(full)
    assert model.config["random_init"] is False
    assert model.config["activation"] == "quickgelu"
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref.encode_image(images)
        ours = model.backbone.encode_image(images)
    torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-4)
    frozen = [p for n, p in model.backbone.named_parameters() if ".ffn_adapter." not in n]
    assert len(frozen) == len(ref.visual.state_dict())
    assert not any(p.requires_grad for p in frozen)


def test_wrong_architecture_names_keys(tmp_path):
    state = tiny_state()
    state.pop("ln_post.bias")
    state["proj"] = torch.zeros(3, 3)
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(DataError) as err:
        build_model("baseline", 3, MODS, backbone="tiny", backbone_weights=path)
    msg = str(err.value)
    assert "wrong.pt" in msg and "ln_post.bias" in msg and "proj" in msg
    good = tmp_path / "tiny.pt"  # a bare visual state dict (no "visual." prefix)
    torch.save(tiny_state(), good)
    tower = VisionTower(BACKBONES["tiny"])
    _, digest = load_backbone_weights(tower, good)
    assert digest == sha(good) and torch.equal(tower.proj, tiny_state()["proj"])
    with pytest.raises(DataError, match="tiny.pt.*missing keys.*resblocks.4"):
        build_model("baseline", 3, MODS, backbone="vit-b-16", backbone_weights=good)


def test_missing_or_corrupt_weights(tmp_path):
    with pytest.raises(ConfigError, match="random_init=True"):
        build_model("baseline", 3, MODS, backbone="tiny")
    with pytest.raises(DataError, match="nope.pt"):
        build_model("baseline", 3, MODS, backbone="tiny", backbone_weights=tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        build_model("baseline", 3, MODS, backbone="tiny", backbone_weights=bad)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_safetensors_local_dir_and_torchscript(tmp_path):
    from safetensors.torch import save_file

    state = tiny_state()
    st = tmp_path / "tiny.safetensors"
    save_file({f"visual.{k}": v.contiguous() for k, v in state.items()}, str(st))
    model = build_model("baseline", 3, MODS, backbone="tiny", backbone_weights=st)
    assert model.config["backbone_hash"] == sha(st)
    torch.testing.assert_close(model.backbone.proj, state["proj"])

    folder = tmp_path / "clip-dir"
    folder.mkdir()
    save_file(
        {f"visual.{k}": v.contiguous() for k, v in state.items()},
        str(folder / "open_clip_model.safetensors"),
    )
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": {"quick_gelu": False}}))
    model = build_model(
        "baseline", 3, MODS, backbone="tiny", backbone_weights=f"local-dir:{folder}"
    )
    assert model.config["activation"] == "gelu"  # the folder's config says GELU
    assert isinstance(model.backbone.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)

    class Wrapper(torch.nn.Module):  # OpenAI's archive layout: a TorchScript with visual.*
        def __init__(self) -> None:
            super().__init__()
            self.visual = VisionTower(BACKBONES["tiny"])
            self.visual.load_state_dict(state)

        def forward(self, x):
            return self.visual.encode_image(x)

    ts = tmp_path / "ViT-tiny.pt"
    traced = torch.jit.trace(Wrapper().eval(), torch.zeros(1, 3, 224, 224), check_trace=False)
    torch.jit.save(traced, str(ts))
    model = build_model("baseline", 3, MODS, backbone="tiny", backbone_weights=ts, activation=None)
    assert model.config["activation"] == "quickgelu"
    torch.testing.assert_close(model.backbone.class_embedding, state["class_embedding"])


def test_random_init_is_reproducible_and_recorded():
    a = build_model("baseline", 3, MODS, backbone="tiny", random_init=True)
    b = build_model("baseline", 3, MODS, backbone="tiny", random_init=True, activation="gelu")
    assert a.config["backbone_hash"] == "random-init" and a.config["random_init"] is True
    assert b.config["activation"] == "gelu" and a.config["activation"] == "quickgelu"
    for (k, v), (_, w) in zip(
        a.backbone.state_dict().items(), b.backbone.state_dict().items(), strict=True
    ):
        assert torch.equal(v, w), k
