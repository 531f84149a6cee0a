"""Free loopback ports for the processes tests start: agents, Prometheus, control planes."""

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """``count`` ports free now, all different: each stays bound until all are chosen.

    Free when chosen, not reserved: another process may bind one before ours does.
    """
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def free_port() -> int:
    return free_ports(1)[0]
