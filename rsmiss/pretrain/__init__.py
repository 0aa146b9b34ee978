"""Domain pretraining of the encoder a method later freezes (``rsmiss pretrain``).

Stage order: it reads cubes (like training) and writes weights that ``--backbone-weights``
loads; nothing of training depends on it.
"""

from rsmiss.models.backbone import describe_weights, pretrained_summary
from rsmiss.pretrain.objectives import OBJECTIVES, PretrainModel
from rsmiss.pretrain.request import PretrainRequest
from rsmiss.pretrain.run import PretrainResult, pretrain

__all__ = [
    "OBJECTIVES",
    "PretrainModel",
    "PretrainRequest",
    "PretrainResult",
    "describe_weights",
    "pretrain",
    "pretrained_summary",
]
