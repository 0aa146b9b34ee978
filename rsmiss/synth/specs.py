"""Official facts of the three benchmarks (../shared/data/README.md), in one place.

The synthetic writers reproduce these exactly at ``--scale 1``; the catalog and the readers
can check themselves against the same constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DatasetSpec:
    """Shape, classes, split sizes and file layout of one benchmark."""

    name: str
    height: int
    width: int
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    train_counts: tuple[int, ...]
    test_counts: tuple[int, ...]
    hs_bands: int
    wavelength_range: tuple[float, float]  # nm, first and last band centre
    files: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_train(self) -> int:
        return sum(self.train_counts)

    @property
    def n_test(self) -> int:
        return sum(self.test_counts)

    def wavelengths(self) -> np.ndarray:
        """Band centres in nm, evenly spaced over the documented range (2 decimals)."""
        lo, hi = self.wavelength_range
        return np.round(np.linspace(lo, hi, self.hs_bands), 2)


HOUSTON2013 = DatasetSpec(
    name="houston2013",
    height=349,
    width=1905,
    class_names=(
        "Healthy grass",
        "Stressed grass",
        "Synthetic grass",
        "Trees",
        "Soil",
        "Water",
        "Residential",
        "Commercial",
        "Road",
        "Highway",
        "Railway",
        "Parking lot 1",
        "Parking lot 2",
        "Tennis court",
        "Running track",
    ),
    palette=(
        (0, 205, 0),
        (127, 255, 0),
        (46, 139, 87),
        (0, 139, 0),
        (160, 82, 45),
        (0, 255, 255),
        (255, 255, 255),
        (216, 191, 216),
        (255, 0, 0),
        (139, 0, 0),
        (100, 100, 100),
        (255, 255, 0),
        (238, 154, 0),
        (85, 26, 139),
        (255, 127, 80),
    ),
    train_counts=(198, 190, 192, 188, 186, 182, 196, 191, 193, 191, 181, 192, 184, 181, 187),
    test_counts=(
        1053,
        1064,
        505,
        1056,
        1056,
        143,
        1072,
        1053,
        1059,
        1036,
        1054,
        1041,
        285,
        247,
        473,
    ),
    hs_bands=144,
    wavelength_range=(364.0, 1046.1),
    files=(
        "2013_IEEE_GRSS_DF_Contest_CASI.tif",
        "2013_IEEE_GRSS_DF_Contest_CASI.hdr",
        "2013_IEEE_GRSS_DF_Contest_LiDAR.tif",
        "2013_IEEE_GRSS_DF_Contest_Samples_TR.txt",
        "2013_IEEE_GRSS_DF_Contest_Samples_VA.txt",
    ),
)

TRENTO = DatasetSpec(
    name="trento",
    height=166,
    width=600,
    class_names=("Apple trees", "Buildings", "Ground", "Woods", "Vineyard", "Roads"),
    palette=(
        (0, 128, 0),
        (255, 0, 0),
        (160, 82, 45),
        (0, 80, 0),
        (173, 255, 47),
        (128, 128, 128),
    ),
    train_counts=(129, 125, 105, 154, 184, 122),
    test_counts=(3905, 2778, 374, 8969, 10317, 3052),
    hs_bands=63,
    wavelength_range=(402.89, 989.09),
    files=("Italy_hsi.mat", "Italy_lidar.mat", "allgrd.mat", "TRLabel.mat", "TSLabel.mat"),
)

# The README gives no wavelengths for Augsburg; its HySpex cube spans about 0.4-2.5 um.
AUGSBURG = DatasetSpec(
    name="augsburg",
    height=332,
    width=485,
    class_names=(
        "Forest",
        "Residential area",
        "Industrial area",
        "Low plants",
        "Allotment",
        "Commercial area",
        "Water",
    ),
    palette=(
        (0, 100, 0),
        (255, 0, 0),
        (128, 128, 128),
        (173, 255, 47),
        (255, 165, 0),
        (255, 0, 255),
        (0, 0, 255),
    ),
    train_counts=(146, 264, 21, 248, 52, 7, 23),
    test_counts=(13361, 30065, 3830, 26609, 523, 1638, 1507),
    hs_bands=180,
    wavelength_range=(400.0, 2500.0),
    files=("data_HS_LR.mat", "data_SAR_HR.mat", "data_DSM.mat", "TrainImage.mat", "TestImage.mat"),
)

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (HOUSTON2013, TRENTO, AUGSBURG)}
DATASETS: tuple[str, ...] = tuple(SPECS)

# Array keys, shapes (at scale 1) and dtypes of the .mat files the writers produce.
MAT_LAYOUT: dict[str, dict[str, tuple[str, tuple[int, ...], str]]] = {
    "trento": {
        "Italy_hsi.mat": ("data", (166, 600, 63), "float64"),
        "Italy_lidar.mat": ("data", (166, 600, 2), "float32"),
        "allgrd.mat": ("mask_test", (166, 600), "uint8"),
        "TRLabel.mat": ("TRLabel", (166, 600), "uint8"),
        "TSLabel.mat": ("TSLabel", (166, 600), "uint8"),
    },
    "augsburg": {
        "data_HS_LR.mat": ("data_HS_LR", (332, 485, 180), "float64"),
        "data_SAR_HR.mat": ("data_SAR_HR", (332, 485, 4), "float64"),
        "data_DSM.mat": ("data_DSM", (332, 485), "float64"),
        "TrainImage.mat": ("TrainImage", (332, 485), "uint8"),
        "TestImage.mat": ("TestImage", (332, 485), "float32"),
    },
}

MIN_PER_CLASS = 5  # ingest refuses a class without training or test pixels
MIN_SIDE = 16  # smallest synthetic scene side, whatever the scale


def scaled_shape(spec: DatasetSpec, scale: float) -> tuple[int, int]:
    """Both sides shrunk by ``scale`` (rounded), never below ``MIN_SIDE``."""
    if scale == 1.0:
        return spec.height, spec.width
    return (max(MIN_SIDE, round(spec.height * scale)), max(MIN_SIDE, round(spec.width * scale)))


def scaled_counts(counts: tuple[int, ...], scale: float) -> tuple[int, ...]:
    """Per-class pixel counts scaled by ``scale**2``, at least ``MIN_PER_CLASS`` each."""
    if scale == 1.0:
        return tuple(counts)
    return tuple(max(MIN_PER_CLASS, round(n * scale * scale)) for n in counts)
