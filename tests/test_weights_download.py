"""CLIP weights by open_clip tag, fetched by open_clip's own download code from 127.0.0.1.

Hub tags (``laion2b_s34b_b88k``) go through huggingface_hub, redirected with its documented
``$HF_ENDPOINT`` (read when huggingface_hub is imported, hence a subprocess); URL tags
(``openai``) through open_clip's URL download, redirected with ``--mirror``. The served file
is a tiny state dict in the place open_clip asks for.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import open_clip
import pytest
import torch
from click.testing import CliRunner
from mirror_server import MirrorServer
from safetensors.torch import save

from rsmiss.cli import main
from rsmiss.training.plan import resolve_weights
from rsmiss.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
HUB_TAG = "laion2b_s34b_b88k"
HUB_FILE = "open_clip_model.safetensors"  # open_clip asks the Hub for the safetensors first
OPENAI_URL = open_clip.get_pretrained_cfg("ViT-B-16", "openai")["url"]


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    real_connect = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to connect to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def server(tmp_path):
    srv = MirrorServer(tmp_path / "mirror").start()
    yield srv
    srv.stop()


def refused(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    return line


def test_hub_tag_downloads_through_open_clip_into_root_weights(server, tmp_path):
    hub_id = open_clip.get_pretrained_cfg("ViT-B-16", HUB_TAG)["hf_hub"].rstrip("/")
    blob = save({"visual.proj": torch.arange(6.0).reshape(2, 3)})
    server.folder.joinpath(hub_id, "resolve", "main").mkdir(parents=True)
    server.folder.joinpath(hub_id, "resolve", "main", HUB_FILE).write_bytes(blob)
    root = tmp_path / "ws"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_ENDPOINT": server.url.rstrip("/"),
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "rsmiss.cli", "download", "--weights", HUB_TAG]
        + ["--root", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    dest = root / "weights" / f"ViT-B-16-{HUB_TAG}.safetensors"
    digest = hashlib.sha256(blob).hexdigest()
    assert dest.read_bytes() == blob and f"sha256 {digest}" in proc.stdout
    assert server.gets(f"/{hub_id}/resolve/main/{HUB_FILE}")
    assert not list((root / "downloads").rglob("*.safetensors"))  # moved, not copied

    # The cached file serves `--backbone-weights TAG` without the network (what runs record).
    n = len(server.requests)
    path, sha = resolve_weights(Workspace(root), "vit-b-16", HUB_TAG, False)
    assert (path, sha) == (str(dest), digest) and len(server.requests) == n


def test_openai_tag_with_wrong_bytes_is_refused_by_its_checksum(server, tmp_path):
    server.put(OPENAI_URL, b"not OpenAI's weights")
    root = tmp_path / "ws"
    args = ["download", "--weights", "openai", "--root", str(root), "--mirror", server.url]
    line = refused(CliRunner().invoke(main, args))
    expected = OPENAI_URL.split("/")[-2]
    got = hashlib.sha256(b"not OpenAI's weights").hexdigest()
    assert line.startswith("error: --backbone-weights openai: ")
    assert f"expected {expected}, got {got}" in line
    assert server.gets("/openaipublic.azureedge.net/")
    assert not (root / "weights").exists() or not list((root / "weights").iterdir())


def test_offline_tag_names_the_tag_and_the_file_to_place(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    monkeypatch.setenv("RSMISS_MIRROR", closed)
    root = tmp_path / "ws"
    line = refused(
        CliRunner().invoke(main, ["train", "--backbone-weights", "openai", "--root", str(root)])
    )
    assert "--backbone-weights openai" in line and "cannot download ViT-B-16 weights" in line
    assert f"place the file at {root / 'weights' / 'ViT-B-16-openai.pt'}" in line
    assert not (root / "weights").exists() or not list((root / "weights").iterdir())


def test_unknown_tag_lists_the_known_ones(tmp_path):
    line = refused(
        CliRunner().invoke(main, ["download", "--weights", "nosuchtag", "--root", str(tmp_path)])
    )
    assert "nosuchtag: neither a file nor an open_clip tag of ViT-B-16" in line
    assert "openai" in line and HUB_TAG in line


def test_files_fetched_by_tag_carry_their_activation_in_the_name(tmp_path):
    from rsmiss.models.backbone import read_backbone_weights

    blob = save({"visual.proj": torch.zeros(2, 3)})
    expected = {"laion2b_s34b_b88k": "gelu", "openai": "quickgelu", "metaclip_400m": "quickgelu"}
    for tag, activation in expected.items():
        path = tmp_path / f"ViT-B-16-{tag}.safetensors"
        path.write_bytes(blob)
        assert read_backbone_weights(path)[1] == activation, tag
    (tmp_path / "mine.safetensors").write_bytes(blob)
    assert read_backbone_weights(tmp_path / "mine.safetensors")[1] is None  # the default
