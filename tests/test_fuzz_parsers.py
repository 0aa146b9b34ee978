"""Fuzzing the two text parsers users feed by hand: ENVI ROI exports and catalog YAML.

Whatever the text, the parser either returns a result or raises the project's own
``RsmissError`` (one line naming the file); any other exception would reach the user as a
traceback. Examples are kept few enough for the whole file to run in a few seconds.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rsmiss.catalog import CATALOG_DIR, DatasetSpec, load_catalog
from rsmiss.errors import RsmissError
from rsmiss.io.roi import RoiFile, read_roi

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --------------------------------------------------------------------------- ROI text
NUMBERS = st.one_of(
    st.integers(-5, 12).map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["inf", "-inf", "nan", "1e30", "-1e400", "3.7", "0x10", "", "-", "1_000"]),
)
TOKENS = st.one_of(NUMBERS, st.text(max_size=6))


@st.composite
def roi_texts(draw) -> str:
    """Mostly well-formed exports with damaged numbers, counts, headers and rows."""
    n = draw(st.integers(0, 3))
    lines = [draw(st.sampled_from(["; ENVI Output of ROIs (4.8)", "", ";"]))]
    lines.append(f"; Number of ROIs: {draw(st.one_of(st.just(str(n)), TOKENS))}")
    w = draw(st.one_of(st.integers(1, 9).map(str), TOKENS))
    h = draw(st.one_of(st.integers(1, 9).map(str), TOKENS))
    lines.append(f"; File Dimension: {w} x {h}")
    npts = []
    for k in range(n):
        m = draw(st.integers(0, 4))
        npts.append(m)
        lines.append(f"; ROI name: {draw(st.text(max_size=5))}")
        lines.append(f"; ROI rgb value: {{{draw(TOKENS)}, 0, {k}}}")
        lines.append(f"; ROI npts: {draw(st.one_of(st.just(str(m)), TOKENS))}")
    lines.append(
        draw(
            st.sampled_from(
                [";   ID  X  Y  Lat", "; X Y", ";ID X Y", "; Y X ID", ";  X  Y  ID", ";"]
            )
        )
    )
    for m in npts:
        for i in range(m):
            row = [str(i + 1), draw(NUMBERS), draw(NUMBERS)]
            row = draw(st.one_of(st.just(row), st.lists(TOKENS, max_size=4)))
            lines.append("  ".join(row))
        lines.append("")
    # random damage: drop, duplicate or insert lines
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(lines)))
        op = draw(st.sampled_from(["drop", "dup", "insert"]))
        if op == "drop" and i < len(lines):
            del lines[i]
        elif op == "dup" and i < len(lines):
            lines.insert(i, lines[i])
        else:
            lines.insert(i, draw(st.text(max_size=20)))
    sep = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return sep.join(lines)


def _parse_roi(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        roi = read_roi(path)
    except RsmissError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(roi, RoiFile)
    if roi.width * roi.height <= 10_000:  # the label map is allocated: keep it small
        try:
            lm = roi.label_map()
        except RsmissError:
            return
        assert lm.shape == (roi.height, roi.width)
        assert int(lm.max(initial=0)) <= len(roi.rois)


@FUZZ
@given(text=roi_texts())
def test_roi_parser_structured_fuzz(tmp_path, text):
    _parse_roi(tmp_path / "roi.txt", text)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_roi_parser_arbitrary_text(tmp_path, text):
    _parse_roi(tmp_path / "roi.txt", text)


def test_roi_crashes_found_by_fuzzing_are_data_errors(tmp_path):
    """Regressions: ``inf``/``1e30`` in X or Y escaped as OverflowError, and a row shorter
    than a trailing ID column as IndexError (when ROI blocks are re-split on ID restarts)."""
    head = "; Number of ROIs: 1\n; File Dimension: 4 x 4\n; ROI name: a\n; ROI npts: 1\n"
    for bad in ("inf", "1e30", "nan"):
        p = tmp_path / f"{bad}.txt"
        p.write_text(head + f";  ID  X  Y\n1  {bad}  2\n")
        with pytest.raises(RsmissError, match="malformed point row"):
            read_roi(p)
    p = tmp_path / "short.txt"
    p.write_text(
        "; Number of ROIs: 2\n; File Dimension: 4 x 4\n; ROI name: a\n; ROI npts: 1\n"
        "; ROI name: b\n; ROI npts: 1\n;  X  Y  ID\n1 1 1\n2\n"
    )
    with pytest.raises(RsmissError, match="short.txt"):
        read_roi(p)


# --------------------------------------------------------------------------- catalog YAML
BASE = yaml.safe_load((CATALOG_DIR / "trento.yaml").read_text())
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


ALL_PATHS = [p for p in _paths(BASE) if p]


@st.composite
def mutated_catalogs(draw) -> object:
    """The Trento entry with a few fields replaced by values of any type, dropped or added."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            op = draw(st.sampled_from(["replace", "drop", "add"]))
            if op == "replace":
                parent[path[-1]] = draw(VALUES)
            elif op == "drop" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=6))] = draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation changed the structure under this path
    return draw(st.one_of(st.just(doc), VALUES))


def _load(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        spec = load_catalog(path)
    except RsmissError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    assert isinstance(spec, DatasetSpec)
    spec.canonical_json()  # what ingest does next with a valid spec
    for m in spec.modalities:
        m.wavelength_list()


@FUZZ
@given(doc=mutated_catalogs())
def test_catalog_structurally_valid_yaml_with_wrong_types(tmp_path, doc):
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except yaml.YAMLError:
        return
    _load(tmp_path / "fuzz.yaml", text)


YAML_BITS = st.sampled_from(
    [
        "name: x\n",
        "modalities:\n",
        "  - name: hs\n",
        "    bands: 3\n",
        "    source: {file: a.mat}\n",
        "split: {method: none}\n",
        "classes: [{name: a}]\n",
        "- ",
        ": ",
        "{",
        "[",
        "&a ",
        "*a ",
        "!!python/object:os.system ",
        "!!binary ",
        "? ",
        "|\n",
        "\t",
        "---\n",
        "%YAML 1.1\n",
        "wavelengths: {start: 1, stop: .inf}\n",
        "bands: -1\n",
        "shape: [1e999, 2]\n",
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parts=st.lists(st.one_of(YAML_BITS, st.text(max_size=8)), max_size=12))
def test_catalog_arbitrary_yaml_text(tmp_path, parts):
    _load(tmp_path / "fuzz.yaml", "".join(parts))


def test_fuzz_strategies_reach_the_success_path(tmp_path):
    """Guard that the fuzzers are not only producing rejects: the unmutated inputs parse."""
    _load(tmp_path / "ok.yaml", yaml.safe_dump(BASE))
    p = tmp_path / "ok.txt"
    p.write_text(
        "; Number of ROIs: 1\n; File Dimension: 3 x 2\n; ROI name: a\n; ROI npts: 2\n"
        ";  ID  X  Y\n1 1 1\n2 3 2\n"
    )
    roi = read_roi(p)
    assert roi.label_map().tolist() == [[1, 0, 0], [0, 0, 1]]
    assert np.array_equal(roi.rois[0].rows, [0, 1])
