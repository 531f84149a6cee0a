"""nodekeeper: a node agent for Kubernetes clusters whose nodes run the Docker Engine."""

__version__ = "0.1.0"
