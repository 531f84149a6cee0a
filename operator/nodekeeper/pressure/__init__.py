"""Node pressure: what the kernel says about stalls and limits, turned into decisions.

Readers (``psi``, ``cgroups``, ``totals``) turn kernel files into frozen snapshots; ``triggers``
wakes the agent when the kernel sees a stall; ``thresholds`` turns samples into Node conditions
with a sustain window and hysteresis; ``sampler`` runs that loop; ``admission`` refuses new
Workloads on a node under pressure; ``reporter`` carries the conditions to the Node; ``report``
shows all of it to a human. The agent's own memory is not node pressure: see
:mod:`nodekeeper.agent`.

This package reads files under injected roots (``/proc``, ``/sys/fs/cgroup``) and never imports
kopf, docker or kubernetes: the reporter writes through kube's Protocols, the wiring builds it.
"""
