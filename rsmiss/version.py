"""The rsmiss version, in a module of its own so every stage can read it without importing
the package's public entry points (``rsmiss.train`` reaches training and inference)."""

__version__ = "0.1.0"
