"""Stopping a process a test started, as an init system would: SIGTERM, a grace, SIGKILL."""

import signal
import subprocess


def stop_gently(process: "subprocess.Popen[bytes]", grace: float = 15) -> int:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code (-9 when it was killed)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
