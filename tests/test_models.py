"""Model contract: trainable parts, MaMOL routing semantics, skipped encoders, every method."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import rsmiss
from rsmiss.errors import ConfigError, DataError
from rsmiss.models import METHODS, OPTION_KEYS, build_model
from rsmiss.models.adapters.lora import LoRA, LoRAConfig
from rsmiss.models.adapters.mamol import MaMOLAdapter, MaMOLConfig, MaMOLFFNAdapter, MaMOLRouting
from rsmiss.models.context import PassContext

P = 5  # patch size: 25 tokens (position embeddings interpolated from the 14x14 grid)


def modalities(m: int) -> dict[str, int]:
    return dict(list({"hs": 6, "lidar": 1, "sar": 2}.items())[:m])


def all_patterns(m: int) -> torch.Tensor:
    rows = [r for r in itertools.product([True, False], repeat=m) if any(r)]
    return torch.tensor(rows)


def batch(mods: dict[str, int], available: torch.Tensor, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    b = available.shape[0]
    return {name: torch.randn(b, c, P, P, generator=g) for name, c in mods.items()}


def tiny(method: str = "mamol", m: int = 2, **options):
    torch.manual_seed(0)
    return build_model(
        method, 4, modalities(m), backbone="tiny", random_init=True, patch_size=P, **options
    )


def adapters(model) -> list:
    blocks = model.backbone.transformer.resblocks
    return [b.ffn_adapter for b in blocks if b.ffn_adapter is not None]


def randomise_lora_b(model) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0, 0.05)


def test_only_adapters_projections_and_head_train():
    model = tiny("mamol")
    available = all_patterns(2)
    out = model(batch(modalities(2), available), available)
    (out.logits.sum() + out.aux_loss).backward()
    for name, p in model.named_parameters():
        trainable = name.startswith(("tokenizers.", "head.")) or ".ffn_adapter." in name
        assert p.requires_grad == trainable, name
        if not trainable:
            assert p.grad is None, name
    # the paper's MaMOL blocks: last half of the depth ("Last 6x2" on ViT-B/16)
    assert [i for i, b in enumerate(model.backbone.transformer.resblocks) if b.ffn_adapter] == [
        2,
        3,
    ]
    counts = model.parameter_counts()
    assert 0 < counts["trainable"] < counts["total"]
    sd = model.trainable_state_dict()
    assert sum(v.numel() for v in sd.values()) == counts["trainable"]
    assert not any(k.startswith("backbone.") and ".ffn_adapter." not in k for k in sd)


@pytest.mark.parametrize("method", ["mamol", "mamol_ffn", "moe_rep", "moe_ada", "moe_task"])
def test_b_zero_keeps_the_frozen_model_exactly(method):
    model = tiny(method).eval()
    available = all_patterns(2)
    inputs = batch(modalities(2), available)
    with torch.no_grad():
        adapted = model.features(inputs, available)
        blocks = model.backbone.transformer.resblocks
        saved = [b.ffn_adapter for b in blocks]
        for b in blocks:
            b.ffn_adapter = None
        frozen = model.features(inputs, available)
        for b, a in zip(blocks, saved, strict=True):
            b.ffn_adapter = a
    torch.testing.assert_close(adapted, frozen, rtol=0, atol=1e-6)


@pytest.mark.parametrize("method", ["moe_rep", "moe_ada"])
def test_top1_moe_routers_learn_from_the_task_loss(method):
    """A top-1 gate that is constant 1 would leave the router to the balancing loss alone."""
    model = tiny(method).train()
    randomise_lora_b(model)
    available = all_patterns(2)
    out = model(batch(modalities(2), available), available)
    out.logits.square().sum().backward()  # the task loss only, no aux_loss
    grads = [a.router.weight.grad for a in adapters(model)]
    assert all(g is not None and g.abs().sum() > 1e-4 for g in grads)  # not rounding noise


def make_ctx(pattern, available, modality, n_patterns=3):
    return PassContext(
        torch.tensor(pattern), torch.tensor(available), torch.tensor(modality), n_patterns
    )


def assert_router_learns(model, available: torch.Tensor) -> None:
    """The task loss alone reaches every block's router (f_t, W_t) and pattern embedding."""
    out = model(batch(modalities(available.shape[1]), available), available)
    out.logits.square().sum().backward()
    for a in adapters(model):
        assert a.router_mlp.weight.grad.abs().sum() > 0
        assert a.router_out.weight.grad.abs().sum() > 0
        assert a.pattern_embed.weight.grad.abs().sum() > 0


def test_top1_routing_and_router_gradient():
    model = tiny("mamol")
    randomise_lora_b(model)
    adapter = adapters(model)[0]
    ctx = make_ctx([2, 0, 1], [[True, True], [True, False], [False, True]], [0, 0, 1])
    z = torch.randn(3, 7, 64)
    coef = adapter.dynamic_coefficients(z, ctx)
    assert ((coef > 0).sum(-1) == 1).all()  # each token: exactly one dynamic expert
    torch.testing.assert_close(coef.max(-1).values, adapter.gates(z, ctx).max(-1).values)
    assert_router_learns(model, all_patterns(2))


def test_router_sees_the_pattern():
    cfg = MaMOLConfig(router_hidden=4, pattern_dim=2)
    adapter = MaMOLAdapter(8, 2, 3, cfg)
    with torch.no_grad():  # route on the pattern only: pattern 0 -> expert 0, 2 -> expert 1
        adapter.router_mlp.weight.zero_()
        adapter.router_mlp.bias.zero_()
        adapter.router_mlp.weight[0, 8] = adapter.router_mlp.weight[1, 9] = 1.0
        adapter.pattern_embed.weight.copy_(torch.tensor([[5.0, 0.0], [0.0, 0.0], [0.0, 5.0]]))
        adapter.router_out.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0]]))
    z = torch.randn(1, 6, 8).expand(2, -1, -1)  # identical tokens, two patterns
    ctx = make_ctx([0, 2], [[True, False], [True, True]], [0, 0])
    chosen = adapter.dynamic_coefficients(z, ctx).argmax(-1)
    assert (chosen[0] == 0).all() and (chosen[1] == 1).all()


def test_static_experts_follow_the_availability_mask():
    model = tiny("mamol", m=3)
    available = all_patterns(3)
    seen = []
    adapters(model)[0].register_forward_hook(lambda mod, args, out: seen.append(args[2]))
    model(batch(modalities(3), available), available)
    ctx = seen[0]
    adapter = adapters(model)[0]
    coef = adapter.static_coefficients(ctx)
    assert coef.shape == (int(available.sum()), 4)
    assert (coef[:, 0] == 1).all()
    # every row of a sample carries that sample's availability, whichever modality it encodes
    assert torch.equal(coef[:, 1:].bool(), ctx.available)
    assert ctx.available[torch.arange(len(ctx.modality)), ctx.modality].all()
    rows = sorted(
        (tuple(a.tolist()), int(m)) for a, m in zip(ctx.available, ctx.modality, strict=True)
    )
    expected = sorted((tuple(a.tolist()), m) for a in available for m in range(3) if a[m])
    assert rows == expected
    pass_model = tiny("mamol", m=3, static_mode="pass")
    own = adapters(pass_model)[0].static_coefficients(ctx)[:, 1:]
    assert torch.equal(own.argmax(1), ctx.modality) and (own.sum(1) == 1).all()


def test_missing_encoder_is_skipped_and_its_feature_is_zero():
    model = tiny("mamol").eval()
    available = torch.tensor([[True, False], [True, False], [True, True]])
    calls = {"hs": 0, "lidar": 0}
    rows = []
    for name in calls:
        model.tokenizers[name].register_forward_hook(
            lambda _m, args, _o, name=name: calls.__setitem__(name, calls[name] + len(args[0]))
        )
    model.backbone.transformer.resblocks[0].ln_1.register_forward_pre_hook(
        lambda _m, args: rows.append(args[0].shape[0])
    )
    inputs = batch(modalities(2), available)
    with torch.no_grad():
        feats = model.features(inputs, available)
        logits = model(inputs, available).logits
        only_hs = available.clone()
        only_hs[:, 1] = False
        model(inputs, only_hs)
    # three passes; lidar encoded only for its one present sample, and not at all in the last
    assert calls == {"hs": 9, "lidar": 2}
    assert rows[0] == 4 and rows[-1] == 3  # present (sample, modality) pairs only
    dim = model.backbone.cfg.output_dim
    assert (feats[:2, dim:] == 0).all() and (feats[2, dim:] != 0).any()
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["lidar"][:2] = 1e3 * torch.randn_like(changed["lidar"][:2])
    with torch.no_grad():
        assert torch.equal(model(changed, available).logits, logits)


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_forward_backward(method, m):
    model = tiny(method, m=m).train()
    randomise_lora_b(model)
    available = all_patterns(m).repeat(2, 1)
    out = model(batch(modalities(m), available), available)
    assert out.logits.shape == (available.shape[0], 4) and out.aux_loss.dim() == 0
    assert torch.isfinite(out.logits).all()
    loss = torch.nn.functional.cross_entropy(out.logits, torch.arange(len(available)) % 4)
    (loss + out.aux_loss).backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert all(p.grad is not None for p in trainable.values()), [
        n for n, p in trainable.items() if p.grad is None
    ]
    assert model.head.weight.grad.abs().sum() > 0
    if method in ("moe_rep", "moe_ada"):
        assert out.aux_loss > 0
    assert not model.backbone.training  # frozen tower stays in eval mode
    json.dumps(model.config)


def test_placement_layers_experts_and_options():
    first = tiny("moe_ada", placement="first", layers="1", experts="5", top_k="2")
    blocks = first.backbone.transformer.resblocks
    assert [i for i, b in enumerate(blocks) if b.ffn_adapter] == [0]
    assert blocks[0].ffn_adapter.lora.n == 5 and first.config["options"]["top_k"] == 2
    last = tiny("mamol", layers=2, experts=5, no_static="true")
    assert [a.dynamic.n for a in adapters(last)] == [5, 5] and adapters(last)[0].static is None
    ablated = tiny("mamol", no_dynamic=True, no_modality_specific="yes")
    assert adapters(ablated)[0].dynamic is None and adapters(ablated)[0].static.n == 1
    assert set(OPTION_KEYS["mamol"]) >= {
        "placement",
        "layers",
        "experts",
        "rank",
        "top_k",
        "no_dynamic",
        "no_static",
        "no_modality_specific",
        "static_mode",
        "activation",
    }
    with pytest.raises(ConfigError, match="'nope'"):
        tiny("nope")
    with pytest.raises(ConfigError, match="expertz"):
        tiny("mamol", expertz=3)
    with pytest.raises(ConfigError, match="experts='many'"):
        tiny("mamol", experts="many")
    with pytest.raises(ConfigError, match="top_k"):
        tiny("mamol", top_k=3)
    with pytest.raises(ConfigError, match="layers=9"):
        tiny("moe_rep", layers=9)
    with pytest.raises(ConfigError, match="static_mode"):
        tiny("mamol", static_mode="sometimes")
    with pytest.raises(ConfigError, match="placement='head'"):  # `head` is the classifier's
        tiny("moe_ada", placement="head")


def test_pipeline_placements_name_the_first_blocks_first():
    """Table 4's "Head (6x2)" is `first_6x2` in pipelines; `head_6x2` is refused (no alias)."""
    from rsmiss.benchmark.pipeline import PLACEMENT_RE, placement_options

    assert placement_options("first_6x2") == {"placement": "first", "layers": 6, "experts": 2}
    assert not PLACEMENT_RE.match("head_6x2")
    model = tiny("moe_rep", **placement_options("first_2x3"))
    blocks = model.backbone.transformer.resblocks
    assert [i for i, b in enumerate(blocks) if b.ffn_adapter] == [0, 1]


def test_checkpoint_round_trip_and_lazy_export():
    model = tiny("mamol").eval()
    randomise_lora_b(model)
    available = all_patterns(2)
    inputs = batch(modalities(2), available)
    state = model.trainable_state_dict()
    fresh = tiny("mamol").eval()
    fresh.load_trainable_state_dict(state)
    with torch.no_grad():
        assert torch.equal(fresh(inputs, available).logits, model(inputs, available).logits)
    with pytest.raises(DataError, match="checkpoint"):
        tiny("mamol", experts=3).load_trainable_state_dict(state)
    with pytest.raises(DataError, match="no modality"):
        model(inputs, torch.tensor([[True, False], [False, False], [True, True]]))
    assert rsmiss.build_model is build_model


@pytest.mark.parametrize("key", ["rank", "router_hidden", "pattern_dim", "experts"])
def test_mamol_sizes_below_one_are_config_errors(key):
    with pytest.raises(ConfigError, match=key):
        tiny("mamol", **{key: 0})


@pytest.mark.parametrize(
    ("method", "key", "value"),
    [
        ("mamol", "alpha", 0),
        ("moe_ada", "aux_weight", -0.1),
        ("moe_rep", "top_k", 0),
        ("moe_task", "expert_rank", 0),
        ("dcp", "prompt_length", 2),
        ("dcp", "prompt_hidden", 0),
        ("mmp", "prompt_depth", 0),
    ],
)
def test_values_below_an_options_minimum_are_refused_naming_the_range(method, key, value):
    with pytest.raises(ConfigError, match=rf"{key}={value}.* must be (int|float) >"):
        tiny(method, **{key: value})


def _methods_cli(*args: str):
    from click.testing import CliRunner

    from rsmiss.cli import main

    return CliRunner().invoke(main, ["methods", *args])


def test_methods_command_shows_every_method_option_and_its_help():
    res = _methods_cli()
    assert res.exit_code == 0, res.output
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in res.output.strip().split("\n\n")}
    assert len(blocks) == len(METHODS)
    for name, spec in METHODS.items():
        lines = blocks[f"{name} — {spec.summary}"]
        assert lines[0].split() == ["option", "type", "default", "allowed", "help"]
        assert [ln.split()[0] for ln in lines[1:]] == list(spec.options)
        for line, (key, opt) in zip(lines[1:], spec.options.items(), strict=True):
            assert opt.help and line.endswith(opt.help), (name, key)
            assert line.split()[1] == opt.type.__name__, (name, key)
            assert (opt.allowed() or "any") in line, (name, key)
    mamol = blocks[f"mamol — {METHODS['mamol'].summary}"]
    placement = next(ln for ln in mamol if ln.split()[0] == "placement")
    assert placement.split()[:5] == ["placement", "str", "last", "last", "|"]
    assert "first" in placement and "head" not in placement


def test_methods_command_json_and_names():
    res = _methods_cli("--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)["methods"]
    assert [m["name"] for m in data] == list(METHODS)
    for m in data:
        spec = METHODS[m["name"]]
        assert m["summary"] == spec.summary
        assert [o["name"] for o in m["options"]] == list(spec.options)
        for o in m["options"]:
            opt = spec.options[o["name"]]
            assert (o["type"], o["default"], o["help"]) == (
                opt.type.__name__,
                opt.default,
                opt.help,
            )
            assert o["choices"] == (list(opt.choices) if opt.choices else None)
    top_k = next(o for o in data[1]["options"] if o["name"] == "top_k")
    assert (top_k["minimum"], top_k["maximum"], top_k["allowed"]) == (
        1,
        "experts",
        ">= 1, <= experts",
    )
    res = _methods_cli("moe_task", "mmp", "moe_task", "--json")
    assert [m["name"] for m in json.loads(res.output)["methods"]] == ["moe_task", "mmp"]
    assert _methods_cli("mmp").output.startswith("mmp — ")


def test_methods_command_unknown_name_is_one_line_exit_2():
    res = _methods_cli("mamol", "nope")
    assert res.exit_code == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "'nope'" in lines[0] and "mamol" in lines[0], res.stderr


@pytest.mark.parametrize("method", ["mamol", "mamol_ffn", "dcp"])
def test_compiled_blocks_serve_every_batch_composition_with_one_graph(method):
    """compile_blocks (what `--set compile=true` uses): the same logits as eager, and ONE
    training graph whatever the row counts: all modalities present, a single row of a
    modality, other batch sizes (whole-model compile recompiled on such size guards)."""
    from torch._dynamo.utils import counters

    eager = tiny(method).train()
    randomise_lora_b(eager)
    comp = tiny(method).train()
    comp.load_state_dict(eager.state_dict())
    comp.compile_blocks("aot_eager")  # dynamo + AOTAutograd without code generation
    torch._dynamo.reset()
    counters.clear()
    masks = [
        all_patterns(2).repeat(3, 1),
        torch.tensor([[True, True]] * 4),
        torch.tensor([[True, False]] * 5 + [[False, True]]),
        torch.tensor([[True, False]] * 3 + [[True, True]] * 4),
        torch.tensor([[False, True]]),  # ONE encoder row: a size-1 dim would be specialised
    ]
    for i, available in enumerate(masks):
        inputs = batch(modalities(2), available, seed=i)
        want = eager(inputs, available)
        got = comp(inputs, available)
        torch.testing.assert_close(got.logits, want.logits, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got.aux_loss, want.aux_loss, rtol=1e-5, atol=1e-6)
        (got.logits.sum() + got.aux_loss).backward()
        (want.logits.sum() + want.aux_loss).backward()
    assert counters["stats"]["unique_graphs"] == 1
    for (name, pe), pc in zip(eager.named_parameters(), comp.parameters(), strict=True):
        if pe.requires_grad:  # the same gradients, the lone row's copy included
            torch.testing.assert_close(pc.grad, pe.grad, rtol=1e-4, atol=1e-5, msg=name)
    torch._dynamo.reset()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_builds_on_the_meta_device_for_option_checks(method):
    """`check_options` (run by train and benchmark before anything else) builds each method
    on the meta device: defaults pass there, a value attach rejects is rejected, and the
    global RNG is left as it was (the runs' seeds stay exact)."""
    from rsmiss.models import factory
    from rsmiss.models.factory import check_options

    factory._ACCEPTED.clear()  # really build it here, not a combination remembered earlier
    before = torch.random.get_rng_state()
    check_options(method, {}, "vit-b-16")
    assert torch.equal(torch.random.get_rng_state(), before)
    with pytest.raises(ConfigError, match="activation"):
        check_options(method, {"activation": "relu"}, "vit-b-16")
    depth_keys = {"layers", "prompt_depth"} & set(METHODS[method].options)
    for key in depth_keys:  # checked against the backbone's 12 blocks, in attach
        with pytest.raises(ConfigError, match="depth"):
            check_options(method, {key: 13}, "vit-b-16")
    assert depth_keys or method == "baseline"


# ------------------------------------------------------------------ mamol_ffn (expert_site=ffn)


def ffn_mlp(width: int, mlp_width: int) -> torch.nn.Sequential:
    """An open_clip FFN (c_fc, gelu, c_proj) with random weights."""
    from collections import OrderedDict

    return torch.nn.Sequential(
        OrderedDict(
            c_fc=torch.nn.Linear(width, mlp_width),
            gelu=torch.nn.GELU(),
            c_proj=torch.nn.Linear(mlp_width, width),
        )
    )


def test_mamol_ffn_is_mamol_with_its_experts_on_the_ffn_linears():
    model = tiny("mamol_ffn")
    assert model.config["options"]["expert_site"] == "ffn"
    assert tiny("mamol").config["options"]["expert_site"] == "parallel"
    same = tiny("mamol", expert_site="ffn")
    assert all(isinstance(a, MaMOLFFNAdapter) for a in adapters(model))
    state, other = model.state_dict(), same.state_dict()
    assert list(state) == list(other) and all(torch.equal(state[k], other[k]) for k in state)
    cfg, width, n = model.backbone.cfg, 64, 2 + 1 + 2  # dynamic + shared + hs, lidar
    a = adapters(model)[0]
    for kind, experts in ((a.dynamic, 2), (a.static, 3)):
        assert tuple(kind["c_fc"].lora_A.shape) == (experts * 8, width)
        assert tuple(kind["c_fc"].lora_B.shape) == (cfg.mlp_width, experts * 8)
        assert tuple(kind["c_proj"].lora_A.shape) == (experts * 8, cfg.mlp_width)
        assert tuple(kind["c_proj"].lora_B.shape) == (width, experts * 8)
    # documented count: 2·r·(width + mlp_width) per expert per block, plus the router
    router = (width + 32) * 64 + 64 + 64 * 2 + 3 * 32
    per_block = n * 2 * 8 * (width + cfg.mlp_width) + router
    own = sum(p.numel() for name, p in model.named_parameters() if ".ffn_adapter." in name)
    assert own == 2 * per_block


def test_mamol_ffn_forced_to_one_expert_is_one_lora_on_both_linears():
    """Router forced onto dynamic expert 1 (gate exactly 1 in fp32), no static experts: the
    adapter is the frozen FFN with one peft-style LoRA on c_fc and one on c_proj."""
    torch.manual_seed(0)
    width, mlp_width = 8, 32
    cfg = MaMOLConfig(experts=3, rank=4, no_static=True, router_hidden=4, pattern_dim=2)
    adapter = MaMOLFFNAdapter(width, mlp_width, 2, 3, cfg)
    mlp = ffn_mlp(width, mlp_width)
    with torch.no_grad():
        adapter.router_mlp.weight.zero_()
        adapter.router_mlp.bias.fill_(1.0)  # f_t = gelu(1) on every token
        adapter.router_out.weight.zero_()
        adapter.router_out.weight[1].fill_(100.0)  # logit 400 vs 0: softmax exactly (0, 1, 0)
        for bank in adapter.dynamic.values():
            bank.lora_B.normal_(0, 0.3)
    lora_cfg = LoRAConfig(rank=4, alpha=4.0)
    fc, proj = LoRA(width, mlp_width, lora_cfg), LoRA(mlp_width, width, lora_cfg)
    with torch.no_grad():
        for lora, bank in ((fc, adapter.dynamic["c_fc"]), (proj, adapter.dynamic["c_proj"])):
            lora.lora_A.weight.copy_(bank.A(1))
            lora.lora_B.weight.copy_(bank.B(1))
    z = torch.randn(3, 5, width)
    ctx = make_ctx([2, 0, 1], [[True, True], [True, False], [False, True]], [0, 0, 1])
    h = mlp.gelu(mlp.c_fc(z) + fc(z))
    want = mlp.c_proj(h) + proj(h)
    got = adapter(z, mlp, ctx)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert (got - mlp(z)).abs().max() > 1e-2  # the LoRA matters


@pytest.mark.parametrize("mode", ["sample", "pass"])
def test_mamol_ffn_modality_experts_follow_each_samples_availability(mode):
    """Only the LiDAR expert's B is non-zero: every pass (HS or LiDAR) of a sample with LiDAR
    changes, every pass of a sample without it stays the frozen FFN's; `pass` mode instead
    changes the LiDAR passes only. The coefficients are mamol's, row for row."""
    model = tiny("mamol_ffn", m=3, static_mode=mode)
    parallel = tiny("mamol", m=3, static_mode=mode)
    adapter = adapters(model)[0]
    with torch.no_grad():
        for bank in adapter.static.values():
            bank.B(2).normal_(0, 0.3)  # experts: shared, hs, lidar, sar
    seen = []
    adapter.register_forward_hook(lambda _m, args, out: seen.append((args, out)))
    available = all_patterns(3)
    with torch.no_grad():
        model(batch(modalities(3), available), available)
    (z, mlp, ctx), out = seen[0]
    coef = adapter.static_coefficients(ctx)
    assert torch.equal(coef, adapters(parallel)[0].static_coefficients(ctx))
    changed = (out - mlp(z)).abs().amax((1, 2)) > 1e-4
    lidar_on = ctx.available[:, 1] if mode == "sample" else ctx.modality == 1
    assert torch.equal(changed, lidar_on) and changed.any() and not changed.all()


def test_mamol_ffn_gradients_reach_router_pattern_embedding_and_every_expert():
    model = tiny("mamol_ffn", m=3).train()
    randomise_lora_b(model)
    assert_router_learns(model, all_patterns(3).repeat(2, 1))
    for a in adapters(model):
        for kind in (a.dynamic, a.static):
            for bank in kind.values():
                for e in range(bank.n):
                    rows = slice(e * bank.rank, (e + 1) * bank.rank)
                    assert bank.lora_A.grad[rows].abs().sum() > 0
                    assert bank.lora_B.grad[:, rows].abs().sum() > 0


def test_both_expert_sites_route_through_one_method(monkeypatch):
    """Whatever observes routing (gates, chosen experts, static coefficients) sees both sites
    through `MaMOLRouting.route`, with the same shapes."""
    seen = []
    route = MaMOLRouting.route

    def record(self, hz, ctx, length):
        routing = route(self, hz, ctx, length)
        seen.append((type(self), routing))
        return routing

    monkeypatch.setattr(MaMOLRouting, "route", record)
    available = all_patterns(2)
    shapes = {}
    for method in ("mamol", "mamol_ffn"):
        model = tiny(method, experts=3, top_k=2)
        with torch.no_grad():
            model(batch(modalities(2), available), available)
        shapes[method] = [tuple(t.shape) for _, r in seen for t in r]
        seen.clear()
    assert shapes["mamol"] == shapes["mamol_ffn"] and len(shapes["mamol"]) == 2 * 4
    assert shapes["mamol"][:4] == [(4, 26, 3), (4, 26, 2), (4, 3), (4, 26, 6)]
