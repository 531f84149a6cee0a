"""``GET /api/v1/logs``: the node's stored container logs over HTTP, one page at a time.

The parameters are those of ``nodekeeper logs`` (see :mod:`nodekeeper.logs.filters`). The answer
is JSON: ``{"lines": [...], "nextCursor": "..."}``; pass ``cursor=<nextCursor>`` for the next page
(or, once it is null, to wait for newer lines by asking again later: that is how ``--follow``
works). Access is guarded by the server's ``/api/`` guard (TokenReview and SubjectAccessReview
unless ``api_auth`` is ``none``). Queries read the store through their own read-only connection
in a worker thread, so they never hold up the writer or the event loop.
"""

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from nodekeeper.logs.filters import FilterError, build_query
from nodekeeper.logs.query import QueryPage, run_query
from nodekeeper.logs.records import Flag, StoredLine


def line_json(line: StoredLine) -> dict[str, Any]:
    return {
        "container": line.container_id,
        "containerName": line.container_name,
        "stream": line.stream,
        "time": line.time,
        "log": line.log,
        "flags": [flag.name.lower() for flag in Flag if flag in line.flags and flag.name],
        "cursor": line.cursor,
    }


def page_json(page: QueryPage) -> bytes:
    return orjson.dumps(
        {"lines": [line_json(line) for line in page.lines], "nextCursor": page.next_cursor}
    )


class LogApi:
    def __init__(self, store_path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self._store_path = store_path
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/logs", self.serve)]

    async def serve(self, request: web.Request) -> web.Response:
        try:
            query = build_query(dict(request.query), self._clock())
        except FilterError as e:
            return _json(400, orjson.dumps({"error": str(e)}))
        if not self._store_path.exists():
            return _json(503, orjson.dumps({"error": "the log store does not exist yet"}))
        page = await asyncio.to_thread(run_query, self._store_path, query)
        return _json(200, page_json(page))


def _json(status: int, body: bytes) -> web.Response:
    response = web.Response(status=status, body=body, content_type="application/json")
    response.force_close()
    return response
