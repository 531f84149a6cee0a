"""Restart delays: exponential from an initial delay up to a maximum, with jitter.

Jitter (plus or minus 20 %) keeps many Workloads that failed together (a dockerd restart, a bad
image push) from restarting in lockstep.
"""

import random

JITTER = 0.2


def restart_delay(
    restarts: int, *, initial: float, maximum: float, rng: random.Random | None = None
) -> float:
    """Seconds to wait before restart number ``restarts + 1``."""
    base = min(maximum, initial * 2.0 ** min(restarts, 32))
    spread: float = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return max(0.0, min(maximum, base * spread))
