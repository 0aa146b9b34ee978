"""Benchmark pipelines, paper mapping, reports and the missing-input check (no training)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from rsmiss.benchmark.collect import record as _record
from rsmiss.benchmark.pipeline import expand, load_pipeline
from rsmiss.benchmark.preflight import missing_inputs, missing_message
from rsmiss.benchmark.prepare import scenario_of
from rsmiss.cli import main
from rsmiss.errors import ConfigError
from rsmiss.reports import paper
from rsmiss.reports.tables import ReportHeader, render_csv, render_markdown, write_report

REPO = Path(__file__).resolve().parents[1]
PIPES = REPO / "pipelines"
SHARED_PAPER = REPO.parent / "shared" / "data" / "paper"


def _cells(name: str, seeds: list[int] | None = None):
    """The pipeline's cells for one seed (the paper grids declare three; counts per seed)."""
    pipe = load_pipeline(PIPES / f"{name}.yaml")
    return expand(pipe.model_copy(update={"seeds": seeds or [0]}))


def test_paper_pipelines_run_three_seeds_and_seeds_override():
    for name in ("paper-table1", "paper-table3", "paper-table4", "paper-table5", "paper-fig4"):
        assert load_pipeline(PIPES / f"{name}.yaml").seeds == [0, 1, 2], name
    assert len(expand(load_pipeline(PIPES / "paper-table5.yaml"))) == 3 * len(
        _cells("paper-table5")
    )
    result = CliRunner().invoke(
        main, ["benchmark", str(PIPES / "paper-table4.yaml"), "--dry-run", "--seeds", "3,5"]
    )
    assert result.exit_code == 0, result.output
    assert "30 cells" in result.output and "/s5" in result.output and "/s0" not in result.output
    bad = CliRunner().invoke(main, ["benchmark", str(PIPES / "smoke.yaml"), "--seeds", "1,1"])
    assert bad.exit_code == 2 and "--seeds" in bad.output


def test_dry_run_lists_all_189_cells_of_table1():
    result = CliRunner().invoke(
        main, ["benchmark", str(PIPES / "paper-table1.yaml"), "--dry-run", "--seeds", "0"]
    )
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("  ") and "/s0" in line]
    assert len(rows) == 189  # the paper's 162 and mamol_ffn's 27
    assert "189 cells" in result.stdout
    assert "estimated GPU time" in result.stdout and "passes/s" in result.stdout
    assert len({r.split()[1] for r in rows}) == 189  # distinct cell ids


def test_table1_cells_map_one_to_one_onto_the_paper():
    cells = _cells("paper-table1")
    ours = [c for c in cells if c.method == "mamol_ffn"]
    assert len(ours) == 27 and all(paper.lookup(c.paper_query()) is None for c in ours)
    cells = [c for c in cells if c.method != "mamol_ffn"]
    hits = [paper.lookup(c.paper_query()) for c in cells]
    assert all(h is not None and h.table == "table1" for h in hits)
    assert len({h.row for h in hits}) == 162 == len(paper.load_table("table1"))
    # spot checks against the published numbers
    by_id = {c.cell_id: h for c, h in zip(cells, hits, strict=True)}
    assert by_id["trento/both-r0.70/mamol/s0"].oa == 97.39
    assert by_id["augsburg/hs-r0.90/dcp/s0"].kappa == 24.17
    assert by_id["houston2013/other-r0.50/mmp/s0"].oa == 91.56


def test_table3_has_the_four_availability_rows():
    cells = _cells("paper-table3")
    assert len(cells) == 4
    ids = [scenario_of(c) for c in cells]
    assert ids[1] == "avail-hs1.00-sar0.75-lidar0.50-s0"
    oas = [paper.lookup(c.paper_query()).oa for c in cells]
    assert oas == [80.10, 83.29, 77.38, 67.19]


def test_table4_and_table5_map_every_cell():
    t4 = _cells("paper-table4")
    assert len(t4) == 15
    assert [paper.lookup(c.paper_query()) for c in t4 if c.method == "mamol_ffn"] == [None] * 3
    t4 = [c for c in t4 if c.method != "mamol_ffn"]
    got4 = {(c.paper_name, c.placement): paper.lookup(c.paper_query()).oa for c in t4}
    assert got4[("mamol_dyn", "last_6x2")] == 97.39
    assert got4[("moe_task", "first_6x2")] == 96.44
    assert t4[0].paper_query()["placement"] == "first_6x2"
    t5 = _cells("paper-table5")
    assert len(t5) == 21  # 5 paper rows + static_pass + mamol_ffn, at 3 rates
    hits5 = {(c.variant, c.rate): paper.lookup(c.paper_query()) for c in t5}
    # every paper row is mapped; static_mode=pass and mamol_ffn are ours alone (no number)
    assert sorted(k for k, h in hits5.items() if h is None) == sorted(
        [(v, r) for v in ("static_pass", "mamol_ffn") for r in (0.5, 0.7, 0.9)]
    )
    assert hits5[("no_dynamic", 0.5)].oa == 96.72
    assert hits5[("mamol", 0.9)].oa == 95.94
    assert {c.options.get("static_mode") for c in t5 if c.variant == "static_pass"} == {"pass"}
    assert {c.options.get("no_static") for c in t5 if c.variant == "no_static"} == {True}


def test_fig4_cells_and_no_paper_numbers():
    cells = _cells("paper-fig4")
    evals = [c for c in cells if c.is_eval]
    assert len(cells) == 30 and len(evals) == 12
    assert all(paper.lookup(c.paper_query()) is None for c in cells)
    c = evals[0]
    assert scenario_of(c) == "both-r0.50-s0" and scenario_of(c, True) == "hs-r0.50-s0"


def test_packaged_paper_tables_equal_the_shipped_csvs():
    """load_table reads the CSVs shipped in the package; beside a checkout that has
    ../shared/data/paper, the shipped copy must also equal that source."""
    shipped = Path(paper.__file__).parent / "paper_tables"
    for name in paper.PAPER_TABLES:
        text = (shipped / f"{name}.csv").read_text()
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows and list(paper.load_table(name)) == rows
        if SHARED_PAPER.is_dir():
            assert text == (SHARED_PAPER / f"{name}.csv").read_text(), name


def test_bad_pipeline_field_names_file_and_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "grid:\n  - datasets: [trento]\n    rates: [1.5]\n    settings: [both]\n"
        "    methods: [mamol]\n"
    )
    with pytest.raises(ConfigError, match=r"bad.yaml: field 'grid.0.rates'"):
        load_pipeline(bad)
    result = CliRunner().invoke(main, ["benchmark", str(bad), "--dry-run"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "grid.0.rates" in result.stderr


def test_unknown_method_option_is_a_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "grid:\n  - datasets: [trento]\n    rates: [0.5]\n    settings: [both]\n"
        "    methods: [{method: mamol, options: {no_such_thing: 1}}]\n"
    )
    result = CliRunner().invoke(main, ["benchmark", str(bad), "--dry-run"])
    assert result.exit_code == 2 and "no_such_thing" in result.stderr


@pytest.mark.parametrize(
    ("options", "named"),
    [("{rank: 0}", "rank=0"), ("{experts: 2, top_k: 3}", "top_k=3"), ("{layers: 13}", "layers=13")],
)
def test_bad_method_option_value_fails_before_anything_runs(tmp_path, options, named):
    line = _refused_pipeline(tmp_path, "", f"{{method: mamol, options: {options}}}", "--dry-run")
    assert "bad.yaml" in line and named in line, line


def _refused_pipeline(tmp_path, recipe: str, method: str, *flags: str) -> str:
    """Run a one-cell pipeline that must be refused: exit 2, one line, nothing written."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (f"recipe:\n{recipe}\n" if recipe else "")
        + "grid:\n  - datasets: [trento]\n    rates: [0.5]\n    settings: [both]\n"
        f"    methods: [{method}]\n"
    )
    result = CliRunner().invoke(main, ["benchmark", str(bad), *flags, "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written
    return line


@pytest.mark.parametrize(
    ("recipe", "named"),
    [
        ("  train_options: {eval_batch_size: 0}", "eval_batch_size"),
        ("  train_options: {bogus: 1}", "'bogus'"),
        ("  train_options: {write_map: maybe}", "write_map"),
        ("  precision: fp8", "recipe.precision"),
    ],
)
def test_bad_recipe_fails_before_anything_runs(tmp_path, recipe, named):
    line = _refused_pipeline(tmp_path, recipe, "mamol")
    assert "bad.yaml: recipe" in line and named in line, line


@pytest.mark.parametrize(
    ("block", "named"),
    [
        (
            "datasets:\n  trento:\n    synthetic: {scale: 0.05}\n    ingest: {patchsize: 7}\n",
            "patchsize",
        ),
        (
            "datasets:\n  trento:\n    synthetic: {scale: 0.05}\n    ingest: {workers: 0}\n",
            "workers",
        ),
        ("recipe:\n  patch_size: 7\n", "recipe.patch_size"),
    ],
)
def test_bad_dataset_block_fails_before_anything_is_synthesised(tmp_path, block, named):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        block + "grid:\n  - datasets: [trento]\n    rates: [0.5]\n    settings: [both]\n"
        "    methods: [mamol]\n"
    )
    result = CliRunner().invoke(main, ["benchmark", str(bad), "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "bad.yaml: field" in line and named in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


@pytest.mark.parametrize(
    ("marker", "got"),
    [
        ({"dataset": "trento", "scale": 0.1, "seed": 0}, "synthetic scale 0.1, seed 0"),
        ({"dataset": "trento", "scale": 0.05, "seed": 3}, "synthetic scale 0.05, seed 3"),
        (None, "real"),
    ],
)
def test_raw_files_of_another_synthetic_scene_are_refused(tmp_path, marker, got):
    from rsmiss.benchmark.preflight import raw_files

    raw = tmp_path / "raw" / "trento"
    raw.mkdir(parents=True)
    for name in raw_files("trento"):
        (raw / name).write_bytes(b"x")
    if marker is not None:
        (raw / "SYNTHETIC").write_text(json.dumps({**marker, "state": "complete"}))
    before = sorted(p.name for p in raw.iterdir())
    pipe = tmp_path / "p.yaml"
    pipe.write_text(
        "recipe: {backbone: tiny, random_init: true}\n"
        "datasets:\n  trento:\n    synthetic: {scale: 0.05, seed: 0}\n"
        "grid:\n  - datasets: [trento]\n    rates: [0.5]\n    settings: [both]\n"
        "    methods: [mamol]\n"
    )
    result = CliRunner().invoke(main, ["benchmark", str(pipe), "--root", str(tmp_path)])
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and str(raw) in line and got in line, line
    assert "synthetic scale 0.05, seed 0" in line.split(" asks for ")[1], line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "raw"]
    assert sorted(p.name for p in raw.iterdir()) == before


def test_missing_inputs_lists_every_raw_file_and_the_weights(tmp_path):
    pipes = [load_pipeline(PIPES / f"{n}.yaml") for n in ("paper-table1", "paper-table3")]
    (tmp_path / "raw" / "trento").mkdir(parents=True)
    (tmp_path / "raw" / "trento" / "Italy_lidar.mat").write_bytes(b"x")
    missing = missing_inputs(pipes, tmp_path)
    paths = [Path(m.path) for m in missing if m.what == "raw"]
    names = {(p.parent.name, p.name) for p in paths}
    assert ("houston2013", "2013_IEEE_GRSS_DF_Contest_CASI.tif") in names
    assert ("augsburg", "data_DSM.mat") in names  # Table 3 needs the LiDAR/DSM file
    assert ("trento", "Italy_hsi.mat") in names
    assert ("trento", "Italy_lidar.mat") not in names
    assert len(paths) == len(set(paths)) == 4 + 4 + 5
    assert [m.path for m in missing if m.what == "weights"] == [
        str(tmp_path / "weights" / "ViT-B-16.pt")
    ]
    msg = missing_message(missing)
    assert "\n" not in msg and "rsmiss download houston2013" in msg and "ViT-B-16.pt" in msg
    assert "--backbone-weights openai" in msg  # the tag is offered


def test_missing_weights_are_named_for_the_pipeline_backbone(tmp_path):
    pipe = load_pipeline(PIPES / "paper-table5.yaml")
    pipe = pipe.model_copy(
        update={"recipe": pipe.recipe.model_copy(update={"backbone": "vit-l-14"})}
    )
    weights = [m for m in missing_inputs([pipe], tmp_path) if m.what == "weights"]
    assert [m.path for m in weights] == [str(tmp_path / "weights" / "ViT-L-14.pt")]
    assert "ViT-L-14" in weights[0].source and "ViT-B-16" not in weights[0].source


def test_weights_of_another_backbone_stop_the_preflight(tmp_path):
    import torch

    from rsmiss.models.backbone import TINY, VisionTower, WeightsMisfit

    w = tmp_path / "tiny.pt"
    torch.save(VisionTower(TINY).state_dict(), w)
    pipe = load_pipeline(PIPES / "paper-table5.yaml")
    with pytest.raises(WeightsMisfit, match=r"holds tiny weights, not ViT-B-16") as err:
        missing_inputs([pipe], tmp_path, backbone_weights=str(w))
    assert str(w) in str(err.value)


def test_benchmark_without_data_stops_at_once(tmp_path):
    result = CliRunner().invoke(
        main, ["benchmark", str(PIPES / "paper-table5.yaml"), "--root", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert "Italy_hsi.mat" in result.stderr and "TSLabel.mat" in result.stderr
    assert "ViT-B-16.pt" in result.stderr
    assert not (tmp_path / "cubes").exists() and not (tmp_path / "runs").exists()


def _fake_run(cell, oa, kappa):
    cfg = SimpleNamespace(
        scenario_id=scenario_of(cell),
        epochs=30,
        backbone="vit-b-16",
        backbone_weights_sha256="ab" * 32,
        random_init=False,
    )
    metrics = {
        "modalities": ["hs", "lidar"],
        "parameters": {"trainable": 1234},
        "synthetic_data": False,
        "overall": {"oa": oa, "aa": oa - 1, "kappa": kappa},
        "by_pattern": {"complete": {"oa": oa + 1}, "hs_missing": {"oa": oa - 2}},
    }
    return SimpleNamespace(
        run_id=f"run-{cell.cell_id}",
        config=cfg,
        metrics=metrics,
        perf={"device": "1 x H100"},
        environment=None,
        model_info={"modalities": {"hs": 63, "lidar": 2}},
    )


def test_report_shows_ours_beside_the_paper_for_every_cell_that_ran(tmp_path):
    cells = _cells("paper-table1")
    ran = [
        c for c in cells if c.dataset == "trento" and c.rate == 0.7 and c.paper_name != "mamol_ffn"
    ]
    ran = ran[:7]
    records = []
    for i, c in enumerate(ran):
        run = _fake_run(c, 90.0 + i, 88.0 + i)
        records.append(_record(c, run, run.metrics, None))
    header = ReportHeader(
        pipeline="paper-table1",
        weights="ab" * 32,
        datasets={"trento": "real"},
        epochs=[30],
        seeds=[0],
        n_groups=162,
    )
    md = render_markdown(header, records)
    lines = md.splitlines()
    for i, (c, rec) in enumerate(zip(ran, records, strict=True)):
        ours = f"{90.0 + i:.2f}/{88.0 + i:.2f}"
        hit = paper.lookup(c.paper_query())
        ours_line = next(j for j, line in enumerate(lines) if ours in line and "| ours |" in line)
        block = "\n".join(lines[ours_line : ours_line + 3])
        assert f"{hit.oa:.2f}/{hit.kappa:.2f}" in block, block
        assert f"{90.0 + i - hit.oa:+.2f}/{88.0 + i - hit.kappa:+.2f}" in block
        assert rec["diff_oa"] == round(90.0 + i - hit.oa, 2)
    assert "7 of 162 ran" in md and "ViLT" in md and "ab" * 32 in md
    assert "RANDOM INIT" not in md
    # runs.csv has every run; the files are written (plot included)
    paths = write_report(tmp_path / "rep", header, records)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text())))
    assert len(rows) == 7 and rows[0]["paper_oa"] and json.loads(rows[0]["pattern_oa"])
    assert paths["plot"].read_bytes()[:4] == b"\x89PNG"
    assert render_csv(records) == paths["csv"].read_text()  # deterministic


def test_report_averages_seeds_and_flags_random_init():
    pipe = load_pipeline(PIPES / "paper-table5.yaml").model_copy(update={"seeds": [0, 1]})
    cells = [c for c in expand(pipe) if c.variant == "mamol" and c.rate == 0.5]
    assert len(cells) == 2
    records = [
        _record(
            c,
            _fake_run(c, 96.0 + 2 * c.seed, 95.0),
            {"overall": {"oa": 96.0 + 2 * c.seed, "kappa": 95.0}},
            None,
        )
        for c in cells
    ]
    md = render_markdown(ReportHeader(pipeline="t5", weights=None, seeds=[0, 1]), records)
    assert "97.00±1.41" in md and "98.39" in md and "RANDOM INIT" in md


def test_methods_of_our_own_have_no_paper_number_and_are_named_as_ours(tmp_path):
    """mamol_ffn (or mamol with expert_site=ffn, whatever a pipeline calls it) is never put
    beside a paper number, and every report that shows it says it is rsmiss's extension."""
    records = []
    for name in ("paper-table1", "paper-table4", "paper-table5"):
        cells = [c for c in _cells(name) if c.dataset == "trento" and c.rate == 0.7]
        cells = [c for c in cells if c.setting == "both" and c.variant in ("mamol", "mamol_ffn")]
        assert {c.variant for c in cells} == {"mamol", "mamol_ffn"}, name
        for i, c in enumerate(cells):
            run = _fake_run(c, 80.0 + i, 70.0 + i)
            records.append(_record(c, run, run.metrics, None))
    ours = [r for r in records if r["method"] == "mamol_ffn"]
    assert len(ours) == 5 and not any(r["paper_oa"] for r in ours)
    assert all(r["paper_oa"] for r in records if r["method"] == "mamol")
    md = render_markdown(ReportHeader(pipeline="p", weights="ab" * 32), records)
    assert md.count("rsmiss's extension") == 1
    assert "| mamol_ffn | CLIP (paper: —, ours) |" in md  # Table 4
    assert "| mamol_ffn | —, ours |" in md  # Table 5
    disguised = tmp_path / "disguised.yaml"
    disguised.write_text(
        "table: table5\ngrid:\n  - datasets: [trento]\n    rates: [0.7]\n"
        "    settings: [both]\n    methods: [{method: mamol, paper: mamol, "
        "options: {expert_site: ffn}}]\n"
    )
    (cell,) = expand(load_pipeline(disguised))
    assert paper.lookup(cell.paper_query()) is None
    assert paper.lookup(replace(cell, options_json="{}").paper_query()).oa == 97.39


def test_synthetic_checksum_warnings_become_one_note(tmp_path, caplog):
    """Ingest warns once per raw file whose checksum is not the catalog's; for synthetic
    raw files the benchmark's logging filter turns them into one note for the dataset."""
    import logging

    from rsmiss.benchmark.prepare import _quiet_synthetic
    from rsmiss.synth import MARKER

    (tmp_path / MARKER).write_text("{}")
    ingest_log = logging.getLogger("rsmiss.ingest.pipeline")
    caplog.set_level(logging.INFO, logger="rsmiss")
    with _quiet_synthetic(tmp_path, "trento"):
        for f in ("a.mat", "b.mat"):
            ingest_log.warning("warning: %s: sha256 ... does not match the catalog's ...", f)
        ingest_log.info("cube written")
    ingest_log.warning("warning: c.mat: sha256 ... does not match the catalog's ...")  # after
    assert [r.getMessage() for r in caplog.records] == [
        "trento: synthetic raw files (checksums differ from the real ones)",
        "cube written",
        "warning: c.mat: sha256 ... does not match the catalog's ...",
    ]
