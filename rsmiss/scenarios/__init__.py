"""Missing-modality scenarios: exact, seeded, reproducible availability masks.

``build_scenarios`` writes ``ROOT/scenarios/<dataset>/<scenario-id>.npz`` from the cubes;
``load_scenario`` reads one back, verifying its hash (and the cube it was built for).
The pure-numpy core (``allocation``, ``patterns``, ``spatial``) knows nothing about files;
``inputs`` reads a cube, ``requests`` resolves the flags, ``build`` writes the files and
``store`` defines them (docs/design.md, "Scenario format").

Ids (``store.scenario_id``): ``both-r0.90-s0``, ``other-r0.70-s1``, ``hs-r0.50-s0``;
``all-r0.75-s0-m-hs-sar-lidar`` when the modalities differ from the dataset's default (the
paper's pair: hs+lidar for Houston 2013 and Trento, hs+sar for Augsburg; every modality
for other datasets); ``avail-hs1.00-sar0.75-lidar0.50-s0``; then ``-spatial`` and
``-test-<pattern>-r<rate>`` for a test split built with another setting.

For two modalities without one named ``hs``, the first modality plays HS's role in
``other``/``both``. Samples the cube did not observe keep that modality missing and count
toward the rate (see ``allocation``); they are the only way a sample can lack everything.
"""

from __future__ import annotations

from rsmiss.scenarios.allocation import Allocation, allocate_split, apportion, controlled_round
from rsmiss.scenarios.build import BuildResult, build_scenarios, make_scenario
from rsmiss.scenarios.inputs import CubeInputs, read_cube_inputs
from rsmiss.scenarios.patterns import (
    DEFAULT_MODALITIES,
    Setting,
    availability_setting,
    default_modalities,
    parse_availability,
    pattern_names,
    pattern_setting,
)
from rsmiss.scenarios.requests import Request, resolve_requests
from rsmiss.scenarios.spatial import neighbour_share, smooth_scores
from rsmiss.scenarios.store import Scenario, load_scenario, save_scenario, scenario_id

__all__ = [
    "DEFAULT_MODALITIES",
    "Allocation",
    "BuildResult",
    "CubeInputs",
    "Request",
    "Scenario",
    "Setting",
    "allocate_split",
    "apportion",
    "availability_setting",
    "build_scenarios",
    "controlled_round",
    "default_modalities",
    "load_scenario",
    "make_scenario",
    "neighbour_share",
    "parse_availability",
    "pattern_names",
    "pattern_setting",
    "read_cube_inputs",
    "resolve_requests",
    "save_scenario",
    "scenario_id",
    "smooth_scores",
]
