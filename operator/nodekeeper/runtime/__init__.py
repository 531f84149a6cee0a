"""The only package that talks to the Docker Engine (through the docker SDK).

Blocking SDK calls run in threads; errors leave this package as :mod:`nodekeeper.runtime.errors`.
"""
