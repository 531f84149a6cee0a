"""Node pressure: what the kernel says about stalls and limits, turned into decisions.

Readers (``psi``, ``cgroups``, ``totals``) turn kernel files into frozen snapshots; ``triggers``
wakes the agent when the kernel sees a stall; ``thresholds`` turns samples into Node conditions
with a sustain window and hysteresis; ``sampler`` runs that loop; ``admission`` refuses new
Workloads on a node under pressure; ``selfprotect`` and ``recorder`` keep the agent itself alive
and explain it when it is not; ``report`` shows all of it to a human.

This package reads files under injected roots (``/proc``, ``/sys/fs/cgroup``) and never imports
kopf, docker or kubernetes: the handlers and the wiring carry its results to the API.
"""
