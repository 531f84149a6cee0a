"""The kopf registry and settings for one node's agent.

- standalone: peering would let one agent freeze all the others;
- field selectors ``spec.nodeName=<node>``, keyed per resource: a selector keyed for every
  resource would reach watches where the field does not exist and fail with 400;
- storage prefixes and the finalizer under ``nodekeeper.io``; diff-bases only on own objects;
- Events posted as component ``nodekeeper``, instance = the node; only warnings become Events
  (kopf's default posts one per handler run, which floods the Events of busy objects).
"""

import logging
from collections.abc import Callable

import kopf

from nodekeeper.api import GROUP, backuprun, workload
from nodekeeper.api.names import COMPONENT, FINALIZER, STORAGE_PREFIX
from nodekeeper.handlers import backupruns, workloads
from nodekeeper.handlers.ownership import OwnNodeDiffBaseStorage
from nodekeeper.kube.client import Credentials


def field_selector(node_name: str) -> str:
    return f"spec.nodeName={node_name}"


def settings(
    node_name: str, *, shutdown_timeout: float, api_timeout: float = 30.0
) -> kopf.OperatorSettings:
    result = kopf.OperatorSettings()
    # kopf's own requests (patches, lists, Events) and its watches' connects: the same bound as
    # the agent's own calls (api_timeout_seconds), not kopf's 5-minute default.
    result.networking.request_timeout = api_timeout
    result.networking.connect_timeout = api_timeout
    result.peering.standalone = True
    result.peering.mandatory = False
    result.persistence.finalizer = FINALIZER
    result.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=STORAGE_PREFIX)
    result.persistence.diffbase_storage = OwnNodeDiffBaseStorage(
        node_name, prefix=STORAGE_PREFIX, key="last-handled-configuration"
    )
    for plural in (workload.PLURAL, backuprun.PLURAL):
        result.watching.field_selectors[GROUP, plural] = field_selector(node_name)
    result.posting.reporting_component = COMPONENT
    result.posting.reporting_instance = node_name
    result.posting.level = logging.WARNING
    # A hard guard behind the staged shutdown: never hang a node drain.
    result.process.ultimate_exiting_timeout = shutdown_timeout
    return result


def registry(
    login_credentials: Callable[[], Credentials],
    *,
    with_workloads: bool = True,
    with_backupruns: bool = True,
) -> kopf.OperatorRegistry:
    """``login_credentials`` is called at each (re-)login, so refreshed tokens are picked up.

    A kind switched off gets no handlers: its objects on this node are left as they are (no
    finalizer is added, so deleting them never waits for this agent)."""
    result = kopf.OperatorRegistry()

    @kopf.on.login(registry=result)
    def login(**_: object) -> kopf.ConnectionInfo:
        credentials = login_credentials()
        return kopf.ConnectionInfo(
            server=credentials.server,
            ca_path=credentials.ca_path,
            insecure=credentials.insecure,
            certificate_path=credentials.certificate_path,
            private_key_path=credentials.private_key_path,
            scheme=credentials.scheme,
            token=credentials.token,
        )

    if with_workloads:
        workloads.register(result)
    if with_backupruns:
        backupruns.register(result)
    return result
