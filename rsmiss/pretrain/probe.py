"""The linear probe: is the encoder worth the name?

Logistic regression (scikit-learn) on the frozen pooled CLS features of a cube's
training-split pixels — the features every method's head reads — trained on one half of
those pixels and scored on the other (stratified, seeded), once for the pretrained encoder
(with the tokenizers pretraining learned) and once for the random-init tower (with seeded
random tokenizers). Test pixels are never read. Features of a modality a pixel lacks are
zeros, as in the classifier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsmiss.pretrain.objectives import PretrainModel
from rsmiss.pretrain.pixels import PixelSet, probe_pixels
from rsmiss.training.data import Scene


@torch.no_grad()
def encoder_features(model: PretrainModel, pixels: PixelSet, batch_size: int = 512) -> np.ndarray:
    """(N, M * output_dim) concatenated pooled features of the pixels' observed modalities."""
    was = model.training
    model.eval()
    out = []
    for start in range(0, len(pixels), batch_size):
        sl = slice(start, start + batch_size)
        patches = pixels.scene.patches(pixels.row[sl], pixels.col[sl], torch.device("cpu"))
        out.append(torch.cat(model.pooled(pixels.dataset, patches, pixels.observed[sl]), dim=1))
    model.train(was)
    return torch.cat(out).numpy()


def probe_score(features: np.ndarray, labels: np.ndarray, seed: int) -> float:
    """Held-out OA (%) of a standardised logistic regression on a stratified half split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels)
    stratify = labels if counts[counts > 0].min() >= 2 else None
    x_fit, x_val, y_fit, y_val = train_test_split(
        features, labels, test_size=0.5, random_state=seed, stratify=stratify
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    clf.fit(x_fit, y_fit)
    return round(100.0 * float(accuracy_score(y_val, clf.predict(x_val))), 2)


def linear_probe(
    cube: str | Path, model: PretrainModel, req: Any, patch: int, scene: Scene | None = None
) -> dict[str, Any]:
    """Probe OA of the pretrained ``model`` and of the random-init encoder on one cube.

    Scored on all modalities together and on each modality alone (its own feature block,
    on the pixels that have it): with every sensor present a synthetic scene's training
    pixels are nearly separable by any features, while one sensor alone — the situation
    a missing modality creates — shows what the encoder adds.
    """
    from rsmiss.pretrain.request import build_model

    pixels = probe_pixels(cube, patch, req.probe_pixels, req.seed, scene=scene)
    labels = pixels.label.numpy()
    random_model = build_model(req, [pixels], patch)
    feats = {"pretrained": encoder_features(model, pixels),
             "random": encoder_features(random_model, pixels)}  # fmt: skip
    dim = model.tower.cfg.output_dim
    views: dict[str, tuple[slice, np.ndarray]] = {"all": (slice(None), np.ones(len(labels), bool))}
    for j, m in enumerate(pixels.modalities):
        views[m] = (slice(j * dim, (j + 1) * dim), pixels.observed[:, j].numpy())
    scores: dict[str, dict[str, float]] = {}
    for view, (cols, rows) in views.items():
        if rows.sum() < 4:
            continue
        scores[view] = {
            f"{which}_oa": probe_score(f[rows][:, cols], labels[rows], req.seed)
            for which, f in feats.items()
        }
    return {
        "dataset": pixels.dataset,
        "n": len(pixels),
        "pretrained_oa": scores["all"]["pretrained_oa"],
        "random_oa": scores["all"]["random_oa"],
        "by_modality": {k: v for k, v in scores.items() if k != "all"},
        "protocol": "logistic regression on frozen pooled CLS features, stratified half of "
        "the training-split pixels held out",
    }
