"""Catalog: the three benchmark entries, the example user YAML, and errors naming file + field."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from rsmiss.catalog import CATALOG_DIR, catalog_names, load_catalog
from rsmiss.cli import main
from rsmiss.errors import ConfigError

README_SHA = {  # ../shared/data/README.md
    "Italy_hsi.mat": "7b965fd405314b5c91451042e547a1923be6f5a38c6da83969032cff79729280",
    "Italy_lidar.mat": "a04dc90368d6a7b4f9d3936024ba9fef4105456c090daa14fff31b8b79e94ab1",
    "allgrd.mat": "7e3fb2a2ea22c2661dfc768db3cb93c9643b324e7e64fadedfa57f5edbf1818f",
    "TRLabel.mat": "593976a1bef4edf06ec543926811509f997454557aa9313ed6165b3012c26e07",
    "TSLabel.mat": "629ae33464907098cacf58549996711bf7079f036946f9208fde8a67842ab499",
}


def test_benchmarks_are_in_the_catalog_and_match_the_official_facts():
    from rsmiss.synth.specs import SPECS

    assert set(catalog_names()) >= {"houston2013", "trento", "augsburg"}
    for name, facts in SPECS.items():
        spec = load_catalog(name)
        assert spec.name == name and spec.shape == (facts.height, facts.width)
        assert spec.class_names == list(facts.class_names)
        assert spec.modalities[0].name == "hs" and spec.modalities[0].bands == facts.hs_bands
        wl = spec.modalities[0].wavelength_list()
        assert len(wl) == facts.hs_bands and wl[0] == facts.wavelength_range[0]
        assert wl[-1] == pytest.approx(facts.wavelength_range[1])
        assert len(spec.palette) == facts.n_classes


def test_trento_checksums_and_modalities():
    spec = load_catalog("trento")
    sums = {f.file: f.sha256 for f in spec.files().values()}
    assert sums == README_SHA
    assert [(m.name, m.bands) for m in spec.modalities] == [("hs", 63), ("lidar", 2)]
    assert spec.split.method == "label_maps" and spec.split.labels.key == "mask_test"


def test_augsburg_has_three_modalities_and_houston_uses_roi_files():
    aug = load_catalog("augsburg")
    assert [(m.name, m.bands) for m in aug.modalities] == [("hs", 180), ("sar", 4), ("lidar", 1)]
    hou = load_catalog(CATALOG_DIR / "houston2013.yaml")
    assert hou.split.method == "roi" and hou.split.train.file.endswith("_TR.txt")
    assert hou.split.test.file.endswith("_VA.txt")


def test_example_user_yaml_is_valid():
    spec = load_catalog(CATALOG_DIR / "examples" / "user_geotiff.yaml")
    assert spec.split.method == "random" and spec.split.train_per_class == 20
    assert spec.modalities[0].kind == "hyperspectral" and spec.reference_name == "hs"
    assert (
        spec.modalities[1].source.reader == "geotiff" and spec.modalities[1].source.nodata == -9999
    )


def test_example_index_split_yaml_is_valid_and_index_fields_are_checked(tmp_path):
    import yaml

    path = CATALOG_DIR / "examples" / "user_index_split.yaml"
    spec = load_catalog(path)
    assert spec.split.method == "index" and spec.split.columns.row == "row"
    assert spec.files()["split:index"].file == "split.csv"
    assert spec.files()["split:index"].reader == "csv"
    doc = yaml.safe_load(path.read_text())
    for split, needle in (
        ({"method": "index"}, "needs the index CSV as 'file'"),
        ({"method": "index", "file": "a.csv", "train": {"file": "t.tif"}}, "takes no 'train'"),
        ({"method": "none", "file": "a.csv"}, "belong to method 'index' only"),
        ({"method": "index", "file": "a.csv", "columns": {"row": ""}}, "split.columns.row"),
    ):
        p = tmp_path / "mine.yaml"
        p.write_text(yaml.safe_dump(dict(doc, split=split)))
        with pytest.raises(ConfigError, match=needle):
            load_catalog(p)


def test_unknown_dataset_lists_known_ones_exit_2():
    with pytest.raises(ConfigError, match="unknown dataset 'nope'.*trento"):
        load_catalog("nope")
    res = CliRunner().invoke(main, ["ingest", "nope"])
    assert res.exit_code == 2
    assert res.output.strip().count("\n") == 0 and "unknown dataset 'nope'" in res.output


def test_invalid_yaml_syntax_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nmodalities: [\n  - {name: hs\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+ invalid YAML"):
        load_catalog(p)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["modalities"][0].update(bands="many"), "modalities.0.bands"),
        (lambda d: d["modalities"][1].update(name="hs"), "modality names must be unique"),
        (lambda d: d["modalities"][0].update(name="label"), "modalities.0.name"),
        (lambda d: d["split"].pop("test"), "needs both 'train' and 'test'"),
        (lambda d: d["modalities"][0]["source"].update(sha256="abc"), "modalities.0.source.sha256"),
        (lambda d: d.update(colour="red"), "colour"),
    ],
)
def test_schema_errors_name_file_and_field(tmp_path, edit, field):
    import yaml

    doc = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
    edit(doc)
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as exc:
        load_catalog(p)
    assert "mine.yaml" in str(exc.value) and field in str(exc.value)
    res = CliRunner().invoke(main, ["ingest", str(p)])
    assert res.exit_code == 2 and "mine.yaml" in res.output


def _user_doc(modalities: list[dict]) -> dict:
    return {
        "name": "mine",
        "modalities": modalities,
        "classes": [{"name": "a"}],
        "split": {"method": "none"},
    }


def test_default_reference_is_hs_else_the_first_modality(tmp_path):
    import yaml

    lidar = {"name": "lidar", "bands": 1, "source": {"file": "dsm.tif"}}
    hs = {"name": "hs", "bands": 4, "source": {"file": "hs.tif"}}
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(_user_doc([lidar, hs])))
    assert load_catalog(p).reference_name == "hs"
    p.write_text(yaml.safe_dump(dict(_user_doc([lidar, hs]), reference="lidar")))
    assert load_catalog(p).reference_name == "lidar"
    p.write_text(yaml.safe_dump(_user_doc([lidar, dict(hs, name="vnir")])))
    assert load_catalog(p).reference_name == "lidar"


def test_modality_kind_defaults_from_name_or_wavelengths(tmp_path):
    import yaml

    mods = [
        {"name": "lidar", "bands": 1, "source": {"file": "a.tif"}},
        {"name": "hs", "bands": 2, "source": {"file": "b.tif"}},
        {"name": "vnir", "bands": 2, "source": {"file": "c.tif"}, "wavelengths": [500, 600]},
        {"name": "dem", "bands": 1, "source": {"file": "d.tif"}},
        {"name": "sar", "bands": 2, "source": {"file": "e.tif"}},
        {"name": "cube", "bands": 2, "source": {"file": "f.tif"}, "kind": "hyperspectral"},
    ]
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(_user_doc(mods)))
    spec = load_catalog(p)
    kinds = [m.modality_kind for m in spec.modalities]
    assert kinds == ["lidar", "hyperspectral", "hyperspectral", "other", "sar", "hyperspectral"]
    mods[0]["kind"] = "thermal"
    p.write_text(yaml.safe_dump(_user_doc(mods)))
    with pytest.raises(ConfigError, match="modalities.0.kind"):
        load_catalog(p)
