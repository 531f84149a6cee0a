"""Wiring: ``build`` makes the agent's parts from Settings, ``run`` starts and stops them.

With handlers/, the only place that imports kopf.
"""

from nodekeeper.app.run import run, run_offline

__all__ = ["run", "run_offline"]
