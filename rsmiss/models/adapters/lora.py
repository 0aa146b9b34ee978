"""LoRA in peft's form, and a bank of LoRA experts evaluated with two matmuls.

peft: `base(x) + lora_B(lora_A(dropout(x))) * scaling`, A random (kaiming uniform), B zero,
so training starts from the frozen model. A bank stacks n experts' A along the rank axis
((n*r, d_in)) and their B along the input axis ((d_out, n*r)); a per-token coefficient per
expert scales the expert's r low-rank activations, which gives `sum_e c_e B_e A_e x` in two
dense matmuls: no gather/scatter, no host sync, and the same cost as one rank-(n*r) LoRA.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA hyper-parameters (peft's names). scaling = alpha / rank."""

    rank: int = 8
    alpha: float = 8.0
    dropout: float = 0.0

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


class LoRA(nn.Module):
    """One LoRA update `B A x * scaling` (the adapter's residual, without the base layer)."""

    def __init__(self, d_in: int, d_out: int, cfg: LoRAConfig = LoRAConfig()) -> None:
        super().__init__()
        self.lora_A = nn.Linear(d_in, cfg.rank, bias=False)
        self.lora_B = nn.Linear(cfg.rank, d_out, bias=False)
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.scaling = cfg.scaling
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lora_B(self.lora_A(self.dropout(x))) * self.scaling


class LoRABank(nn.Module):
    """`n` LoRA experts of rank `rank`: forward(x, coef) = sum_e coef[..., e] B_e A_e x."""

    def __init__(self, n: int, d_in: int, d_out: int, cfg: LoRAConfig = LoRAConfig()) -> None:
        super().__init__()
        self.n, self.rank, self.scaling = n, cfg.rank, cfg.scaling
        self.lora_A = nn.Parameter(torch.empty(n * cfg.rank, d_in))
        self.lora_B = nn.Parameter(torch.empty(d_out, n * cfg.rank))
        self.dropout = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        for e in range(self.n):  # per expert, exactly like n separate peft LoRA layers
            nn.init.kaiming_uniform_(
                self.lora_A[e * self.rank : (e + 1) * self.rank], a=math.sqrt(5)
            )
        nn.init.zeros_(self.lora_B)

    def A(self, e: int) -> torch.Tensor:
        return self.lora_A[e * self.rank : (e + 1) * self.rank]

    def B(self, e: int) -> torch.Tensor:
        return self.lora_B[:, e * self.rank : (e + 1) * self.rank]

    def low_rank(self, x: torch.Tensor) -> torch.Tensor:
        """A x for every expert at once: (..., n*r)."""
        return self.dropout(x) @ self.lora_A.t().to(x.dtype)

    def expand(self, coef: torch.Tensor) -> torch.Tensor:
        """(..., n) per-expert coefficients -> (..., n*r) per low-rank channel."""
        return coef.repeat_interleave(self.rank, dim=-1)

    def forward(self, x: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        h = self.low_rank(x) * self.expand(coef).to(x.dtype)
        return (h @ self.lora_B.t().to(x.dtype)) * self.scaling

    def expert(self, x: torch.Tensor, e: int) -> torch.Tensor:
        """One expert's full output B_e A_e x (the straightforward, dense way)."""
        return (x @ self.A(e).t().to(x.dtype)) @ self.B(e).t().to(x.dtype) * self.scaling
