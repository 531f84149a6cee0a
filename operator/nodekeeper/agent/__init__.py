"""The agent's own health, not the node's: its memory against its limit and the log read budget
that follows it (selfprotect), the flight recorder of its last hour (recorder), and the loop that
samples both and writes crash reports (selfwatch)."""
