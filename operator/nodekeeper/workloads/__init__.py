"""The Workload domain: what a Workload's container should be, and what its state means.

- ``policy``: a container's state and the restart policy -> phase, readiness, reason, backoff
  (pure: tested without Docker);
- ``backoff``: restart delays with jitter; ``images``: which images a namespace may run;
- ``runner``: one labelled container per Workload, replaced when its spec changes;
- ``supervisor``: the per-Workload loop: admit, start, watch events, restart, expire;
- ``status``: the two status writers' field sets and what each writes;
- ``gc``: containers whose Workload or BackupRun is gone; ``usage``: each running Workload
  container's cgroup figures for the metrics.

It reaches Docker only through :mod:`nodekeeper.runtime.protocols` and the API server only
through :mod:`nodekeeper.kube.protocols`; it never imports kopf (handlers/ is the glue).
"""
