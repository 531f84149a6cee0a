"""The only package that talks to the Kubernetes API through the kubernetes client.

Blocking client calls run in threads (``asyncio.to_thread``); errors leave this package as
:mod:`nodekeeper.kube.errors`, never as the client's own exceptions.
"""
