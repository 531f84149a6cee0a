"""Test support written once: one way to run the agent as a process, one free_port, one
eventually(), and in-memory fakes of the kube and runtime Protocols."""
