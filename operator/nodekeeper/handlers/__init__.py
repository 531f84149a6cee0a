"""kopf glue only: filter to this node, call the services below, write status.

This package and :mod:`nodekeeper.app` are the only places that import kopf.
"""
