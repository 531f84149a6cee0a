"""The node's identity: /etc/machine-id, else the first network interface's MAC address.

Reported in ``nodekeeper_agent_info`` and the agent's start-up log line; never written to the
Node (the agent may patch only ``nodes/<name>/status``).
"""

import uuid
from pathlib import Path


def node_id(machine_id: Path = Path("/etc/machine-id")) -> str:
    try:
        text = machine_id.read_text().strip()
    except OSError:
        text = ""
    if text:
        return text
    mac = uuid.getnode()
    return ":".join(f"{(mac >> shift) & 0xFF:02x}" for shift in range(40, -1, -8))
