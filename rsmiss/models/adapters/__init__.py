"""Adapter math (LoRA experts, MaMOL, MoE baselines, prompts); placement lives in injection.py."""
