"""Ingest: raw rasters -> co-registered, standardised zarr cube with patches.

The cube's layout is described in :mod:`rsmiss.cube` and docs/design.md, "Cube format".
Modules: ``grid`` (co-registration), ``labels`` (split and sample index), ``stats``
(training-pixel statistics), ``patches`` (patch cutting), ``cf`` (CF / GeoZarr coordinates
and grid mapping), ``store`` (format version, chunking, finished-cube test), ``write`` (the
store and dask execution), ``pipeline`` (the ``ingest`` entry point).
"""

from __future__ import annotations

from rsmiss.ingest.patches import cut_patches, pad_index
from rsmiss.ingest.pipeline import IngestResult, ingest

__all__ = ["IngestResult", "cut_patches", "ingest", "pad_index"]
