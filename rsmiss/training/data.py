"""The data path: scene tensors on the device, patches cut by index gathering, seeded order.

Patches are never materialised per sample: the co-registered scene of each modality is
reflect-padded once and kept on the device (or in pinned host memory when it does not
fit), and a batch of P x P patches is one gather with precomputed offsets. That is the same
code for training, evaluation and whole-scene prediction, costs the scene's size instead of
P² times it, and keeps Python out of the per-sample path.

The order of samples is a function of (seed, epoch) only, and the global batch is the same
whatever the number of ranks (each rank takes a strided slice of it), so a resumed run and
a 2-process run see the same batches as an uninterrupted single-process one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.errors import DataError


def pad_scene(scene: np.ndarray, patch_size: int) -> np.ndarray:
    """Reflect-pad a (C, H, W) scene so that the patch of pixel (r, c) starts at (r, c).

    The centre sits at index P//2 (also for even P), as in the cube's stored patches.
    """
    before, after = patch_size // 2, patch_size - 1 - patch_size // 2
    h, w = scene.shape[-2:]
    if min(h, w) <= max(before, after):
        raise DataError(
            f"scene of {h} x {w} px is too small for {patch_size} x {patch_size} patches"
        )
    return np.pad(scene, ((0, 0), (before, after), (before, after)), mode="reflect")


def cut_patches(
    padded: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, patch_size: int
) -> torch.Tensor:
    """Gather (B, C, P, P) patches centred on (rows, cols) from a padded (C, Hp, Wp) scene.

    One ``index_select`` on the flattened scene: no loop over samples, no host sync.
    """
    c, _, wp = padded.shape
    off = torch.arange(patch_size, device=padded.device)
    ii = rows.to(padded.device)[:, None] + off  # (B, P)
    jj = cols.to(padded.device)[:, None] + off
    flat = (ii[:, :, None] * wp + jj[:, None, :]).reshape(-1)  # (B*P*P,)
    out = padded.reshape(c, -1).index_select(1, flat)
    return out.reshape(c, rows.shape[0], patch_size, patch_size).permute(1, 0, 2, 3).contiguous()


def _place(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """On the device when it fits comfortably, else pinned host memory (async copies)."""
    if device.type != "cuda":
        return t.to(device)
    free, _ = torch.cuda.mem_get_info(device)
    if t.numel() * t.element_size() < 0.25 * free:
        return t.to(device)
    return t.pin_memory()


@dataclass
class Scene:
    """Padded scene tensors of some modalities (ordered), ready to cut patches from."""

    modalities: tuple[str, ...]
    padded: dict[str, torch.Tensor]
    patch_size: int
    height: int
    width: int
    # (M, H, W) bool on the host, False where the raw data had nodata for that modality.
    # Kept on the host: availability masks built from it cost the model no device sync.
    observed: torch.Tensor

    def to(self, device: torch.device) -> Scene:
        padded = {m: _place(t, device) for m, t in self.padded.items()}
        return Scene(
            self.modalities, padded, self.patch_size, self.height, self.width, self.observed
        )

    @property
    def channels(self) -> dict[str, int]:
        return {m: int(self.padded[m].shape[0]) for m in self.modalities}

    def patches(
        self, rows: torch.Tensor, cols: torch.Tensor, device: torch.device
    ) -> dict[str, torch.Tensor]:
        out = {}
        for m in self.modalities:
            p = self.padded[m]
            if p.device.type == "cpu" and device.type != "cpu":
                out[m] = cut_patches(p, rows.cpu(), cols.cpu(), self.patch_size).to(
                    device, non_blocking=True
                )
            else:
                out[m] = cut_patches(p, rows, cols, self.patch_size)
        return out


def load_scene(
    ds: Any, modalities: tuple[str, ...], patch_size: int, device: torch.device
) -> Scene:
    """Read ``scene_<m>`` of each modality from an opened cube and pad it for patch cutting,
    with the per-pixel ``observed_map`` of those modalities."""
    if "observed_map" not in ds:
        raise DataError("cube has no variable 'observed_map'; re-run rsmiss ingest")
    padded = {}
    h = w = 0
    for m in modalities:
        name = f"scene_{m}"
        if name not in ds:
            raise DataError(f"cube has no variable {name!r}; re-run rsmiss ingest")
        scene = np.asarray(ds[name].values, dtype=np.float32)
        h, w = scene.shape[-2:]
        padded[m] = _place(torch.from_numpy(pad_scene(scene, patch_size)), device)
    cube_mods = [str(m) for m in ds["modality"].values]
    obs = np.asarray(ds["observed_map"].values, dtype=bool)
    observed = torch.from_numpy(obs[[cube_mods.index(m) for m in modalities]].copy())
    return Scene(tuple(modalities), padded, patch_size, int(h), int(w), observed)


@dataclass
class Split:
    """One split's samples as device tensors (all in the cube's sample order)."""

    index: torch.Tensor  # position in the cube's sample axis
    row: torch.Tensor
    col: torch.Tensor
    label: torch.Tensor  # 0-based class
    available: torch.Tensor  # (n, M) bool, columns in the run's modality order

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def subset(self, sel: torch.Tensor) -> Split:
        return Split(
            *(t[sel] for t in (self.index, self.row, self.col, self.label, self.available))
        )

    def to(self, device: torch.device) -> Split:
        return Split(
            *(t.to(device) for t in (self.index, self.row, self.col, self.label, self.available))
        )


@dataclass
class RunData:
    """Everything a rank needs, picklable on CPU: the parent reads the cube once and hands
    this to spawned ranks, which then need neither xarray nor zarr."""

    scene: Scene
    train: Split
    val: Split | None
    test: Split
    n_classes: int
    class_names: list[str]
    test_patterns: np.ndarray  # missing-pattern name of every test sample
    attrs: dict[str, Any]  # cube facts for reports: palette, crs, transform, synthetic

    def to(self, device: torch.device) -> RunData:
        return RunData(
            scene=self.scene.to(device),
            train=self.train.to(device),
            val=None if self.val is None else self.val.to(device),
            test=self.test.to(device),
            n_classes=self.n_classes,
            class_names=self.class_names,
            test_patterns=self.test_patterns,
            attrs=self.attrs,
        )


def _availability(scenario_rows: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Scenario availability, also False where the raw data had no value (nodata).

    A row that nodata would leave with no modality keeps the scenario's row instead: the
    model needs at least one modality and the filled values are the best we have.
    """
    avail = np.asarray(scenario_rows, dtype=bool)
    both = avail & observed
    empty = ~both.any(axis=1)
    both[empty] = avail[empty]
    return both


def load_run_data(
    cube_path: str | Path,
    scenario: Any,
    patch_size: int,
    device: torch.device,
    *,
    seed: int,
    val_fraction: float = 0.0,
    max_test_samples: int | None = None,
    ds: Any = None,
) -> RunData:
    """Load a cube + scenario into device tensors for training and evaluation."""
    if ds is None:
        from rsmiss.cube import open_cube

        ds = open_cube(cube_path)
    modalities = tuple(scenario.modalities)
    cube_mods = [str(m) for m in ds["modality"].values]
    for m in modalities:
        if m not in cube_mods:
            raise DataError(f"{cube_path}: cube has no modality {m!r} needed by scenario")
    split = np.asarray(ds["split"].values).astype(object).astype(str)
    row = np.asarray(ds["row"].values, dtype=np.int64)
    col = np.asarray(ds["col"].values, dtype=np.int64)
    label = np.asarray(ds["label"].values, dtype=np.int64) - 1
    if "observed" not in ds:
        raise DataError(f"{cube_path}: cube has no variable 'observed'; re-run rsmiss ingest")
    obs = np.asarray(ds["observed"].values, dtype=bool)
    observed = obs[:, [cube_mods.index(m) for m in modalities]]
    class_names = [str(c) for c in ds.attrs.get("class_names", [])]
    n_classes = len(class_names) or int(label.max()) + 1

    def make(name: str, rows: np.ndarray) -> Split:
        idx = np.flatnonzero(split == name)
        given = getattr(scenario, f"{name}_index", None)
        if given is not None and len(given) == len(idx) and not np.array_equal(given, idx):
            raise DataError(
                f"scenario {scenario.scenario_id}: its {name} samples are not the cube's; "
                "rebuild it with rsmiss scenarios"
            )
        if len(idx) != len(rows):
            raise DataError(
                f"scenario {scenario.scenario_id}: {len(rows)} {name} rows but the cube has "
                f"{len(idx)} {name} samples; rebuild it with rsmiss scenarios"
            )
        av = _availability(rows, observed[idx])
        return Split(
            torch.from_numpy(idx),
            torch.from_numpy(row[idx]),
            torch.from_numpy(col[idx]),
            torch.from_numpy(label[idx]),
            torch.from_numpy(av),
        )

    train = make("train", scenario.train)
    test = make("test", scenario.test)
    val = None
    if val_fraction > 0:
        g = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        perm = torch.randperm(len(train), generator=g)
        n_val = max(1, int(round(val_fraction * len(train))))
        val = train.subset(perm[:n_val].sort().values)
        train = train.subset(perm[n_val:].sort().values)
    if max_test_samples is not None and max_test_samples < len(test):
        g = torch.Generator().manual_seed(int(seed) * 7919 + 29)
        test = test.subset(torch.randperm(len(test), generator=g)[:max_test_samples].sort().values)
    from rsmiss.scenarios import pattern_names

    scene = load_scene(ds, modalities, patch_size, torch.device("cpu"))
    attrs = {k: _json_attr(ds.attrs.get(k)) for k in ("palette", "crs", "transform")}
    attrs["synthetic"] = bool(_json_attr(ds.attrs.get("synthetic", False)))
    data = RunData(
        scene=scene,
        train=train,
        val=val,
        test=test,
        n_classes=n_classes,
        class_names=class_names,
        test_patterns=np.asarray(pattern_names(test.available.numpy(), modalities)).astype(str),
        attrs=attrs,
    )
    return data.to(device)


def _json_attr(value: Any) -> Any:
    """Attributes may come back as JSON text from some stores; lists and scalars as such."""
    import json

    if isinstance(value, str) and (value[:1] in "[{" or value in ("true", "false", "null")):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The training order of an epoch: a function of (seed, epoch) only, generated on CPU."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch)) % (2**63))
    return torch.randperm(n, generator=g)


def epoch_batches(
    perm: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1
) -> list[tuple[torch.Tensor, int]]:
    """Global batches of ``perm``; this rank's strided share and the global batch size.

    A trailing batch smaller than the world size is dropped (only possible with several
    ranks), so every rank has at least one sample in every step DDP synchronises.
    """
    out = []
    for start in range(0, len(perm), batch_size):
        chunk = perm[start : start + batch_size]
        if len(chunk) < world_size:
            break
        out.append((chunk[rank::world_size], len(chunk)))
    return out


def shard(n: int, rank: int, world_size: int) -> torch.Tensor:
    """Evaluation shard: every sample on exactly one rank, no padding duplicates."""
    return torch.arange(rank, n, world_size)
