"""Connecting to a running dask scheduler (``--scheduler tcp://HOST:PORT``).

Ingest, the benchmark grid and prediction all accept an existing cluster; this is the one
place that checks the address and turns a scheduler that does not answer into one line.
"""

from __future__ import annotations

from typing import Any

from rsmiss.errors import ConfigError

CONNECT_TIMEOUT = "10s"  # how long --scheduler waits for the scheduler to answer


def check_address(address: str) -> None:
    if "://" not in address:
        raise ConfigError(f"--scheduler {address!r}: expected an address like tcp://HOST:8786")


def connect(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``."""
    from distributed import Client

    check_address(address)
    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # a wrong address, a refused port, a timeout
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise ConfigError(
            f"--scheduler {address}: no dask scheduler answers there ({detail[:200]})"
        ) from None
