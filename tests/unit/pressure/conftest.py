"""Fixture trees: small checked-in copies of /proc and /sys/fs/cgroup as each kind of host has them.

- ``proc/``: a kernel with PSI; ``self/cgroup`` puts the agent in memory cgroup ``/agent``.
- ``proc-old-kernel/``: PSI without a ``full`` line for cpu (kernels before 5.13).
- ``proc-without-psi/``: a kernel built without PSI or booted with psi=0: no ``pressure/``.
- ``proc-v2/``: the agent in cgroup v2 ``/kubepods/pod-agent/agent``.
- ``proc-v2-cgroupns/``: the agent in a private cgroup namespace (``0::/``; its ``ns/cgroup``
  link differs from pid 1's), whose own view of cgroupfs is ``cgroup-v2-own/``;
  ``proc-v2-hostns/``: ``0::/`` in the host's namespace (the links agree).
- ``cgroup-v1/``, ``cgroup-v2/``, ``cgroup-hybrid/``: the three layouts, each with the node,
  container :data:`CONTAINER_ID` (cgroupfs driver, or systemd's scope on v2) and the agent.
- ``proc-malformed/``, ``cgroup-v2-malformed/``: garbage where figures belong (text that is not
  PSI, truncated lines, words for numbers, a zero period, bytes that are not text), and a
  ``self/cgroup`` with a line that is not ``hierarchy:controllers:path``.
"""

from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
CONTAINER_ID = "0123456789abcdef" * 4
UNLIMITED_CONTAINER_ID = "fedcba9876543210" * 4
MiB = 2**20
