"""Node pressure: cgroup v1/v2 and PSI readers, triggers, thresholds into Node conditions.

Empty until the pressure work lands; the package exists so the layer contracts name it.
"""
