"""The nodekeeper.io/v1alpha1 API: pydantic models of the CRDs and the condition helper.

These models are the single source of truth for ``crds/*.yaml`` (see :mod:`nodekeeper.api.crds`).
"""

GROUP = "nodekeeper.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
