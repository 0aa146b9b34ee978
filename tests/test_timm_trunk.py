"""timm ViT trunks as the frozen encoder: the renamed trunk computes what timm computes,
misfits are refused in one line, torchgeo weight enums resolve through torch.hub."""

from __future__ import annotations

import hashlib
import socket

import pytest
import timm
import torch
from click.testing import CliRunner
from mirror_server import MirrorServer

from rsmiss.cli import main
from rsmiss.errors import ConfigError, DataError
from rsmiss.models import build_model
from rsmiss.models.backbone import build_backbone
from rsmiss.models.pretrained import fetch_weights

TINY = "vit_tiny_patch16_224"  # 192 wide, 12 blocks, 3 heads: the smallest timm ViT


@pytest.fixture(scope="module")
def timm_tiny(tmp_path_factory):
    """A seeded timm ViT-Ti with 13 input bands (as torchgeo's Sentinel-2 weights have)."""
    torch.manual_seed(0)
    model = timm.create_model(TINY, pretrained=False, in_chans=13, num_classes=10).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a wrong mapping shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    path = tmp_path_factory.mktemp("timm") / f"{TINY}.pth"
    torch.save(model.state_dict(), path)
    return model, path


def test_trunk_computes_what_timm_computes(timm_tiny):
    model, path = timm_tiny
    tower, record = build_backbone(f"timm:{TINY}", path)
    assert record["activation"] == "gelu" and tower.cfg.width == 192 and tower.cfg.grid == 14
    tokens = torch.randn(2, 196, 192)
    with torch.no_grad():
        ours = tower.pool(tower.forward_blocks(tower.embed(tokens, 14)))
        x = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embed
        theirs = model.norm(model.blocks(x))[:, 0]
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-5)


def test_mamol_runs_on_a_timm_trunk(timm_tiny):
    _, path = timm_tiny
    model = build_model(
        "mamol", 6, {"hs": 63, "lidar": 2}, backbone=f"timm:{TINY}", backbone_weights=path
    )
    inputs = {"hs": torch.randn(3, 63, 14, 14), "lidar": torch.randn(3, 2, 14, 14)}
    available = torch.tensor([[True, True], [True, False], [False, True]])
    out = model(inputs, available)
    assert out.logits.shape == (3, 6)
    trainable = [n for n, p in model.backbone.named_parameters() if p.requires_grad]
    assert trainable and all(".ffn_adapter." in n for n in trainable)  # the trunk stays frozen


def test_trunks_that_do_not_fit_and_wrong_checkpoints_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="its trunk does not fit .*reg_token"):
        build_backbone("timm:vit_small_patch14_reg4_dinov2", random_init=True)
    res = CliRunner().invoke(
        main, ["train", "--backbone", "timm:resnet18", "--random-init", "--root", str(tmp_path)]
    )
    assert res.exit_code == 2
    (line,) = res.stderr.splitlines()
    assert line.startswith("error: --backbone: --backbone timm:resnet18: its trunk does not fit")
    torch.save({"class_embedding": torch.zeros(192)}, tmp_path / "clip.pt")
    with pytest.raises(DataError, match="is not a timm ViT checkpoint"):
        build_backbone(f"timm:{TINY}", tmp_path / "clip.pt")


def test_torchgeo_enum_checks_the_model_and_the_hash(tmp_path, monkeypatch):
    from torchgeo.models import ViTSmall16_Weights

    tag = "torchgeo:ViTSmall16_Weights.SENTINEL2_ALL_DINO"
    with pytest.raises(ConfigError, match="weights of timm:vit_small_patch16_224"):
        fetch_weights(f"timm:{TINY}", tag, root=tmp_path)

    real_connect = socket.socket.connect

    def connect(self, address):  # nothing leaves the machine
        assert isinstance(address, tuple) and address[0] == "127.0.0.1", address
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    server = MirrorServer(tmp_path / "mirror").start()
    try:
        url = ViTSmall16_Weights.SENTINEL2_ALL_DINO.url
        server.put(url, b"not the DINO weights")
        with pytest.raises(Exception, match="invalid hash value") as info:
            fetch_weights(
                "timm:vit_small_patch16_224", tag, root=tmp_path / "ws", mirrors=[server.url]
            )
        assert "place vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth" in str(info.value)
        assert server.gets("/hf.co/torchgeo/")
        assert not list((tmp_path / "ws" / "weights").iterdir())

        # A file placed by hand under the enum's name is used as is, without the network.
        placed = tmp_path / "ws" / "weights" / url.rsplit("/", 1)[1]
        placed.write_bytes(b"placed")
        n = len(server.requests)
        path, sha = fetch_weights("timm:vit_small_patch16_224", tag, root=tmp_path / "ws")
        assert path == placed and sha == hashlib.sha256(b"placed").hexdigest()
        assert len(server.requests) == n
    finally:
        server.stop()
