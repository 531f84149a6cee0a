"""How handlers turn status-writer failures into kopf's retry semantics."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import kopf

from nodekeeper.kube.errors import KubeRejected, KubeUnavailable
from nodekeeper.kube.status import ForeignObjectError

# A status write the API server refused (4xx other than conflicts) will not pass on retry.
RETRY_UNAVAILABLE_SECONDS = 5.0


@asynccontextmanager
async def retrying_status_writes() -> AsyncIterator[None]:
    try:
        yield
    except KubeUnavailable as e:
        raise kopf.TemporaryError(str(e), delay=RETRY_UNAVAILABLE_SECONDS) from e
    except ForeignObjectError as e:
        raise kopf.PermanentError(str(e)) from e
    except KubeRejected as e:
        if e.status == 409:
            raise kopf.TemporaryError(str(e), delay=1) from e
        raise kopf.PermanentError(f"the API server refused the status write: {e}") from e
