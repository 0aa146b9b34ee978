"""The resolved configuration of one training run, and the run id derived from it.

A run is identified by everything that changes its numbers (data, scenario, method and
options, backbone and its weights' hash, recipe, seed, device count, precision) and by
nothing else, so re-issuing the same request finds the finished run and skips it, while
changing any of those gives a new run directory instead of silently mixing results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsmiss.errors import ConfigError
from rsmiss.workspace import file_sha256 as workspace_sha256

DEFAULT_EPOCHS = 30
"""Default epoch count (the paper gives none).

Measured on synthetic Trento at full size (819 training pixels, as the real split; η = 0.9
missing both, tiny backbone, batch 128): validation OA (15 % of the training pixels held out)
plateaus at 95-96 % from epoch ~16-20, i.e. ~100-120 steps under warm-up + linear decay.
30 epochs (180-210 steps on Trento/Augsburg-size splits, ~700 on Houston2013) is past that
plateau with margin. Figures in rsmiss/training/README.md.
"""

AUTO_MAX_EPOCHS = 60
"""``--epochs auto``: at most this many epochs (twice the default), stopped early on
validation OA. The learning-rate schedule is laid out over these 60 epochs, so a run that
stops early ends before the decay reaches 0 (the schedule never looks at the curve, which
keeps a stopped run identical to the first epochs of an unstopped one)."""

AUTO_PATIENCE = 5
"""``--epochs auto``: stop when validation OA has not improved for this many epochs. On the
Trento figures above, OA plateaus over 4-5 epochs before it levels off; 5 waits out one
such plateau."""

AUTO_VAL_FRACTION = 0.15
"""``--epochs auto`` without ``--set val_fraction``: the training pixels held out to decide."""

PRECISIONS = ("auto", "32", "bf16")

TRAIN_OPTION_DEFAULTS: dict[str, Any] = {
    # Evaluate on a seeded subset of the test split (tests and quick looks); None = all.
    "max_test_samples": None,
    # Fraction of the *training* samples held out for a validation curve (never the test set);
    # reported only, nothing is selected on it.
    "val_fraction": 0.0,
    # Stop when validation OA has not improved for N epochs (needs val_fraction > 0); None:
    # train all epochs. `--epochs auto` sets it to AUTO_PATIENCE.
    "patience": None,
    # Record routing statistics on the validation split after every epoch (curve column
    # val_separation); the test-set routing is always recorded.
    "val_routing": False,
    # Write a checkpoint every N epochs (and always after the last one).
    "checkpoint_every": 1,
    # Samples per forward pass when evaluating or predicting.
    "eval_batch_size": 512,
    # Write the scene classification map (GeoTIFF + PNG) at the end of training.
    "write_map": True,
    # torch.compile the model's transformer blocks: false, true (= inductor) or a
    # torch.compile backend name. One graph for training and one for evaluation, whatever
    # the batch composition (MultimodalClassifier.compile_blocks). Meant for GPU runs (the
    # first step spends a minute or more compiling); on a CPU compiling costs more than it
    # saves for short runs. Fused kernels round differently, so it is part of the run id.
    "compile": False,
}
"""Training options accepted by ``--set`` beside the model's own option keys."""

# Options that change nothing in the numbers and so stay out of the run id.
_UNHASHED_TRAIN_OPTIONS = ("checkpoint_every", "eval_batch_size", "write_map")


@dataclass(frozen=True)
class RunConfig:
    """Everything one run needs, resolved (no "default" left to interpret later)."""

    dataset: str
    scenario_id: str
    cube_id: str
    method: str = "mamol"
    options: dict[str, Any] = field(default_factory=dict)
    backbone: str = "vit-b-16"
    backbone_activation: str | None = None  # None: what the weights imply, else QuickGELU
    backbone_weights: str | None = None
    backbone_weights_sha256: str | None = None
    random_init: bool = False
    patch_size: int = 14
    epochs: int = DEFAULT_EPOCHS
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 2e-2
    warmup_fraction: float = 0.1
    seed: int = 0
    devices: int = 1
    precision: str = "32"
    train_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {self.epochs}")
        if self.devices < 1:
            raise ConfigError(f"--devices must be at least 1, got {self.devices}")
        if self.lr <= 0:
            raise ConfigError(f"--lr must be positive, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if self.precision not in PRECISIONS[1:]:
            raise ConfigError(f"--precision must be one of 32, bf16; got {self.precision!r}")
        if self.backbone_activation not in (None, "quickgelu", "gelu"):
            raise ConfigError(
                f"--backbone-activation must be quickgelu or gelu, got {self.backbone_activation!r}"
            )
        vf = self.train_opt("val_fraction")
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0.0 <= vf < 1.0:
            raise ConfigError(f"--set val_fraction must be a number in [0, 1), got {vf!r}")
        if self.train_opt("max_test_samples") is not None:
            _check_count("max_test_samples", self.train_opt("max_test_samples"))
        if self.train_opt("patience") is not None:
            _check_count("patience", self.train_opt("patience"))
            if not vf:
                raise ConfigError(
                    "--set patience needs a validation split: add --set val_fraction=0.15 "
                    "(training pixels held out; the test set is never used to stop)"
                )
        if not isinstance(self.train_opt("val_routing"), bool):
            raise ConfigError(
                f"--set val_routing must be true or false, got {self.train_opt('val_routing')!r}"
            )
        _check_count("checkpoint_every", self.train_opt("checkpoint_every"))
        _check_count("eval_batch_size", self.train_opt("eval_batch_size"))
        write_map = self.train_opt("write_map")
        if not isinstance(write_map, bool):
            raise ConfigError(f"--set write_map must be true or false, got {write_map!r}")
        compile_backend(self.train_opt("compile"))  # validates

    @property
    def compile_backend(self) -> str | None:
        """The torch.compile backend of the training step, or None (eager)."""
        return compile_backend(self.train_opt("compile"))

    def build_model(self, channels: dict[str, int], n_classes: int) -> Any:
        """The run's model, seeded: a resumed run, or a run read back for inference, rebuilds
        exactly the parts training started from."""
        from rsmiss.models.seeded import build_model_for_run

        return build_model_for_run(
            self.method,
            n_classes,
            channels,
            seed=self.seed,
            backbone=self.backbone,
            backbone_weights=self.backbone_weights,
            random_init=self.random_init,
            patch_size=self.patch_size,
            options=self.options,
        )

    def train_opt(self, key: str) -> Any:
        return self.train_options.get(key, TRAIN_OPTION_DEFAULTS[key])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def identity(self) -> dict[str, Any]:
        """The fields that decide the numbers: the run id hashes exactly these."""
        d = self.to_dict()
        d.pop("backbone_weights")  # the path may move; the content hash is what matters
        d["train_options"] = {
            k: v for k, v in self.train_options.items() if k not in _UNHASHED_TRAIN_OPTIONS
        }
        if self.compile_backend is None:  # compile=false is the eager default
            d["train_options"].pop("compile", None)
        return d

    @property
    def config_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def run_id(self) -> str:
        """Readable prefix + 8 hex of the config hash: ``trento-both-r0.90-s0-mamol-1a2b3c4d``."""
        prefix = re.sub(
            r"[^A-Za-z0-9_.+-]+", "_", f"{self.dataset}-{self.scenario_id}-{self.method}"
        )
        return f"{prefix}-{self.config_hash[:8]}"


COMPILE_BACKENDS = ("inductor", "aot_eager", "eager", "cudagraphs")


def compile_backend(value: Any) -> str | None:
    """``--set compile=...``: false/off -> None, true/on -> inductor, else a backend name."""
    if value is None or value is False or value in ("off", "false", "no"):
        return None
    if value is True or value == "on":
        return "inductor"
    if isinstance(value, str) and value in COMPILE_BACKENDS:
        return value
    raise ConfigError(
        f"--set compile must be true, false or one of {', '.join(COMPILE_BACKENDS)}; got {value!r}"
    )


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a (possibly large) weights file, cached per (path, size, mtime) in-process."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        _SHA_CACHE[key] = workspace_sha256(p)
    return _SHA_CACHE[key]


def parse_epochs(value: Any) -> int | str | None:
    """``--epochs`` / a recipe's ``epochs``: None (the default), an int >= 1 or ``auto``."""
    if value is None or value == "auto":
        return value
    try:
        epochs = int(str(value))
    except ValueError:
        epochs = 0
    if isinstance(value, bool) or epochs < 1:
        raise ConfigError(f"--epochs must be an integer of at least 1 or 'auto', got {value!r}")
    return epochs


def auto_epochs(train_opts: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``--epochs auto``: (AUTO_MAX_EPOCHS, training options with a patience and, unless
    given, a validation fraction)."""
    opts = dict(train_opts)
    opts.setdefault("patience", AUTO_PATIENCE)
    if not opts.get("val_fraction"):
        opts["val_fraction"] = AUTO_VAL_FRACTION
    return AUTO_MAX_EPOCHS, opts


def _check_count(key: str, value: Any) -> None:
    """A training option that counts something: an integer of at least 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--set {key} must be an integer of at least 1, got {value!r}")


def parse_set(pairs: tuple[str, ...] | list[str], model_keys: set[str] | None) -> tuple[dict, dict]:
    """Split ``--set KEY=VALUE`` pairs into (model options, training options).

    Values are parsed as YAML scalars/lists (``6``, ``true``, ``last``, ``[6, 2]``) so the
    same text works on the command line and in pipeline YAML files.
    """
    import yaml

    model_opts: dict[str, Any] = {}
    train_opts: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        key, _, raw = pair.partition("=")
        key = key.strip()
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        if key in TRAIN_OPTION_DEFAULTS:
            train_opts[key] = value
        elif model_keys is None or key in model_keys:
            model_opts[key] = value
        else:
            known = sorted(set(model_keys) | set(TRAIN_OPTION_DEFAULTS))
            raise ConfigError(f"--set: unknown key {key!r}; known keys: {', '.join(known)}")
    return model_opts, train_opts
