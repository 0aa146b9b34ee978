"""Results a reviewer can trust: routing statistics, parameter counts, capacity matching,
seed aggregation with paired differences, and early stopping on validation OA (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rsmiss.benchmark.pipeline import expand, load_pipeline, placement_options
from rsmiss.models import METHODS, build_model
from rsmiss.models.adapters.mamol import MaMOLAdapter, MaMOLConfig
from rsmiss.models.adapters.moe import AdapterMoE
from rsmiss.models.context import PassContext
from rsmiss.models.routing import (
    RoutingRecorder,
    collapsed,
    js_divergence,
    record_routing,
    separation,
)
from rsmiss.reports.significance import paired_difference
from rsmiss.reports.tables import ReportHeader, render_markdown
from rsmiss.training.loop import should_stop

PIPES = Path(__file__).resolve().parents[1] / "pipelines"
NAMES = ["lidar_missing", "hs_missing", "complete"]  # pattern index 0, 1, 2 for (hs, lidar)


def ctx_for(pattern, available, modality, recording=False) -> PassContext:
    ctx = PassContext(
        torch.tensor(pattern), torch.tensor(available), torch.tensor(modality), n_patterns=3
    )
    ctx.recording = recording
    return ctx


def test_routing_matches_a_hand_count_with_a_fixed_router():
    """AdapterMoE whose router sends a token to expert 0 iff its first feature is > 0."""
    moe = AdapterMoE(width=4, experts=2, rank=2, top_k=1, aux_weight=0.0).eval()
    with torch.no_grad():
        moe.router.weight.copy_(torch.tensor([[3.0, 0, 0, 0], [-3.0, 0, 0, 0]]))
    z = torch.randn(3, 5, 4)
    z[..., 0] = torch.tensor(
        [[1, 1, 1, -1, -1], [-1, -1, -1, -1, 1], [1, -1, 1, -1, 1]], dtype=torch.float
    )
    recorder = RoutingRecorder(3, {id(moe): 7})
    ctx = ctx_for([2, 1, 2], [[1, 1], [0, 1], [1, 1]], [0, 1, 1], recording=True)
    moe(z, torch.nn.Identity(), ctx)
    recorder.consume(ctx.routing)
    stats = recorder.summary(NAMES)
    (block,) = stats["blocks"]
    assert block["block"] == 7 and stats["unit"] == "tokens" and stats["experts"] == 2
    by = block["by_pattern"]
    assert set(by) == {"hs_missing", "complete"}  # lidar_missing never seen
    # hand count: complete = rows 0 and 2 -> 3 + 3 of 10 tokens to expert 0
    assert by["complete"]["tokens"] == 10 and by["complete"]["passes"] == 2
    assert by["complete"]["share"] == [0.6, 0.4]
    assert by["hs_missing"]["share"] == [0.2, 0.8]
    p = torch.tensor([3.0, -3.0]).softmax(0)  # gate of a token with feature +1
    entropy = float(-(p * p.log2()).sum())
    assert by["hs_missing"]["entropy"] == pytest.approx(entropy, abs=5e-4)
    assert by["hs_missing"]["mean_gate"][0] == pytest.approx(
        float(0.2 * p[0] + 0.8 * p[1]), abs=5e-4
    )
    for entry in by.values():  # both distributions sum to 1
        assert sum(entry["share"]) == pytest.approx(1.0, abs=1e-6)
        assert sum(entry["mean_gate"]) == pytest.approx(1.0, abs=2e-3)
    js = js_divergence([0.6, 0.4], [0.2, 0.8])
    assert stats["separation"]["overall"] == pytest.approx(js, abs=1e-6)
    assert stats["separation"]["by_pattern"] == {
        "complete": pytest.approx(js, abs=1e-6),
        "hs_missing": pytest.approx(js, abs=1e-6),
    }
    assert stats["collapsed"] is False


def test_mamol_routing_per_block_and_pattern_in_one_forward():
    """Every block and every pattern sums to 1, from the same pass as the logits."""
    torch.manual_seed(0)
    model = build_model(
        "mamol", 4, {"hs": 6, "lidar": 1}, backbone="tiny", random_init=True, patch_size=3
    ).eval()
    available = torch.tensor([[1, 1], [1, 0], [0, 1], [1, 1], [1, 0]]).bool()
    inputs = {"hs": torch.randn(5, 6, 3, 3), "lidar": torch.randn(5, 1, 3, 3)}
    plain = model(inputs, available).logits
    with record_routing(model) as recorder:
        logits = model(inputs, available).logits
    assert model.routing_recorder is None  # detached afterwards
    torch.testing.assert_close(logits, plain)  # recording changes nothing
    stats = recorder.summary(NAMES, ["shared", "hs", "lidar"])
    blocks = [b.ffn_adapter is not None for b in model.backbone.transformer.resblocks]
    assert [b["block"] for b in stats["blocks"]] == [i for i, x in enumerate(blocks) if x]
    for block in stats["blocks"]:
        assert set(block["by_pattern"]) == set(NAMES)
        for entry in block["by_pattern"].values():
            assert sum(entry["share"]) == pytest.approx(1.0, abs=1e-5)
            assert sum(entry["mean_gate"]) == pytest.approx(1.0, abs=2e-3)
            assert 0 <= entry["entropy"] <= 1.0 + 1e-6  # bits, two experts
            assert entry["tokens"] == entry["passes"] * 10  # 9 patch tokens + class token
        # static experts: on exactly where the sample has the modality
        assert block["by_pattern"]["complete"]["static_on"] == {
            "shared": 1.0,
            "hs": 1.0,
            "lidar": 1.0,
        }
        assert block["by_pattern"]["lidar_missing"]["static_on"]["lidar"] == 0.0
        assert block["by_pattern"]["hs_missing"]["passes"] == 1
        assert block["by_pattern"]["complete"]["passes"] == 4


def test_forced_collapse_is_flagged_in_metrics_and_report():
    torch.manual_seed(0)
    model = build_model(
        "mamol", 4, {"hs": 6, "lidar": 1}, backbone="tiny", random_init=True, patch_size=3
    ).eval()
    for block in model.backbone.transformer.resblocks:
        if block.ffn_adapter is not None:
            adapter = block.ffn_adapter
            with torch.no_grad():  # f_t constant 1: the router always prefers expert 0
                adapter.router_mlp.weight.zero_()
                adapter.router_mlp.bias.fill_(1.0)
                adapter.router_out.weight.zero_()
                adapter.router_out.weight[0].fill_(1.0)
    available = torch.tensor([[1, 1], [1, 0], [0, 1]]).bool()
    with record_routing(model) as recorder:
        model({"hs": torch.randn(3, 6, 3, 3), "lidar": torch.randn(3, 1, 3, 3)}, available)
    stats = recorder.summary(NAMES)
    assert stats["collapsed"] is True
    assert stats["separation"]["overall"] == 0.0
    # one healthy block is enough to clear the flag; so is one pattern of one block
    assert collapsed([{"a": [1.0, 0.0], "b": [0.97, 0.03]}, {"a": [0.0, 1.0], "b": [0, 1]}])
    assert not collapsed([{"a": [1.0, 0.0], "b": [0.9, 0.1]}])
    assert not collapsed([{"a": [1.0, 0.0]}, {"a": [0.5, 0.5]}])
    assert separation([{"a": [1.0, 0.0], "b": [0.0, 1.0]}])["overall"] == 1.0
    rec = {
        "group_id": "table1:trento/both-r0.70/mamol",
        "table": "table1",
        "dataset": "trento",
        "variant": "mamol",
        "method": "mamol",
        "seed": 0,
        "oa": 80.0,
        "rate": 0.7,
        "setting": "both",
        "routing_separation": 0.0,
        "routing_by_pattern": '{"complete": 0.0}',
        "routing_collapsed": True,
        "routing_png": "runs/x/routing.png",
    }
    md = render_markdown(ReportHeader(pipeline="p", seeds=[0]), [rec])
    assert "**COLLAPSED**" in md and "../../runs/x/routing.png" in md


@pytest.mark.parametrize("method", sorted(METHODS))
def test_parameter_table_is_the_sum_of_trainable_numels(method):
    torch.manual_seed(0)
    model = build_model(
        method, 5, {"hs": 6, "lidar": 1}, backbone="tiny", random_init=True, patch_size=3
    )
    counts = model.parameter_counts()
    named = list(model.named_parameters())
    assert counts["trainable"] == sum(p.numel() for _, p in named if p.requires_grad)
    shared = sum(
        p.numel() for n, p in named if p.requires_grad and n.startswith(("tokenizers.", "head."))
    )
    assert counts["method"] == counts["trainable"] - shared
    assert (counts["method"] == 0) == (method == "baseline")


def test_moe_task_slices_by_default_and_takes_a_rank_per_expert():
    def lora_rank(**options) -> int:
        model = build_model("moe_task", 3, {"hs": 4}, backbone="tiny", random_init=True, **options)
        (adapter,) = [b.ffn_adapter for b in model.backbone.transformer.resblocks][-1:]
        return adapter.lora.rank

    assert lora_rank() == 4  # MOELoRA: rank 8 // 2 experts
    assert lora_rank(expert_rank=8) == 8


def test_capacity_matched_pipeline_lands_within_ten_percent():
    """Method-specific parameters at the pipeline's own settings (ViT-B/16 on the meta
    device, the dataset's modalities), every method within 10 % of MaMOL's."""
    pipe = load_pipeline(PIPES / "capacity-matched.yaml")
    cells = [c for c in expand(pipe) if c.seed == pipe.seeds[0]]
    mods = {m: 1 for m in pipe.entry("trento").modalities}
    counts = {}
    for c in cells:
        opts = {**c.options, **placement_options(c.placement)}
        with torch.device("meta"):
            model = build_model(
                c.method, 6, mods, backbone=pipe.recipe.backbone, random_init=True, **opts
            )
        counts[c.method] = model.parameter_counts()["method"]
    assert set(counts) == {"mmp", "dcp", "moe_rep", "moe_ada", "moe_task", "mamol"}
    ref = counts["mamol"]
    for method, n in counts.items():
        assert abs(n - ref) <= 0.10 * ref, (method, n, ref)
    assert len(pipe.seeds) >= 3


def test_seeds_aggregate_into_mean_std_and_a_paired_marker():
    base = {
        "table": "table5",
        "dataset": "trento",
        "setting": "both",
        "rate": 0.7,
        "paper_name": "x",
    }
    records = []
    for seed, (ours, theirs) in enumerate([(90.0, 86.0), (92.0, 87.0)]):
        for variant, oa in (("baseline", theirs), ("mamol", ours)):
            records.append(
                {
                    **base,
                    "group_id": f"table5:trento/both-r0.70/{variant}",
                    "variant": variant,
                    "method": variant,
                    "seed": seed,
                    "oa": oa,
                    "trainable_params": 1000,
                    "method_params": 0 if variant == "baseline" else 250,
                    "epochs": 30,
                    "epochs_used": 30,
                }
            )
    pair = paired_difference({0: 90.0, 1: 92.0}, {0: 86.0, 1: 87.0})
    assert pair.n == 2 and pair.mean == 4.5
    assert pair.std == pytest.approx(math.sqrt(0.5)) and pair.se == pytest.approx(0.5)
    assert pair.significant and pair.text() == "+4.50 ± 0.50 *"
    noisy = paired_difference({0: 90.0, 1: 92.0}, {0: 86.0, 1: 93.0})  # diffs 4, -1
    assert noisy.mean == 1.5 and noisy.se == pytest.approx(2.5) and not noisy.significant
    assert paired_difference({0: 1.0}, {1: 2.0}) is None
    assert paired_difference({0: 3.0}, {0: 2.0}).text() == "+1.00 (1 seed)"
    md = render_markdown(ReportHeader(pipeline="t", seeds=[0, 1]), records)
    row = next(line for line in md.splitlines() if line.startswith("| trento/both-r0.70/baseline"))
    assert "86.50±0.71" in row and "+4.50 ± 0.50 *" in row and "| 0 | 1,000 |" in row
    row = next(line for line in md.splitlines() if line.startswith("| trento/both-r0.70/mamol"))
    assert "91.00±1.41" in row and "| 250 | 1,000 |" in row


def test_epochs_auto_stops_at_the_documented_point():
    def hist(curve):
        return [{"epoch": i + 1, "val_oa": v} for i, v in enumerate(curve)]

    curve = [50, 60, 70, 70, 69, 68, 71, 72]
    stops = [n for n in range(1, len(curve) + 1) if should_stop(hist(curve[:n]), 3)]
    assert stops[0] == 6  # best 70 at epoch 3 (a tie is no improvement), 3 epochs without
    assert not any(should_stop(hist(curve[:n]), None) for n in range(1, 9))
    assert not should_stop([{"epoch": 1}], 3)  # no validation curve: never stops


def test_patience_needs_a_validation_split():
    from rsmiss.errors import ConfigError
    from rsmiss.training.config import AUTO_MAX_EPOCHS, RunConfig, auto_epochs, parse_epochs

    with pytest.raises(ConfigError, match="val_fraction"):
        RunConfig("d", "s", "c", train_options={"patience": 3})
    epochs, opts = auto_epochs({})
    assert epochs == AUTO_MAX_EPOCHS and opts["patience"] == 5 and opts["val_fraction"] == 0.15
    assert auto_epochs({"val_fraction": 0.3})[1]["val_fraction"] == 0.3
    assert parse_epochs("auto") == "auto" and parse_epochs("12") == 12
    with pytest.raises(ConfigError, match="auto"):
        parse_epochs("0")


def test_adapters_record_nothing_unless_a_caller_records():
    adapter = MaMOLAdapter(8, 2, 3, MaMOLConfig())
    ctx = ctx_for([0, 2], [[1, 0], [1, 1]], [0, 0])
    out = adapter(torch.randn(2, 4, 8), torch.nn.Identity(), ctx)
    assert out.shape == (2, 4, 8) and ctx.routing == []
