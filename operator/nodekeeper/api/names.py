"""Every name the agent writes onto objects it does not own alone: labels, annotations, the
finalizer, kopf's storage prefix and the field managers. Each is defined here once, because a
name spelled twice drifts: a label written by one module and filtered on by another must be
the same string.

- Container labels are read back by the Workload and BackupRun runners, garbage collection, the
  usage sampler, the log pipeline (records name their Workload) and ``nodekeeper release-node``.
- BackupRun labels and log-chunk annotations are read by ``kubectl``, the history limits and
  ``nodekeeper backups``.
- Field managers show in ``kubectl get -o yaml --show-managed-fields``.
"""

PREFIX = "nodekeeper.io"

# Labels on every container the agent makes.
LABEL_MANAGED = f"{PREFIX}/managed"
# The node whose agent made the container. One engine per node is the rule, but an engine shared
# by agents of several nodes (a development machine, the e2e suite) must not have one agent
# collect another's containers as orphans. The same key labels BackupRuns with their node.
LABEL_NODE = f"{PREFIX}/node"
LABEL_NAMESPACE = f"{PREFIX}/namespace"  # the owning object's namespace
LABEL_NAME = f"{PREFIX}/name"  # the owning object's name
LABEL_WORKLOAD_UID = f"{PREFIX}/workload-uid"  # a Workload's container
LABEL_SPEC_HASH = f"{PREFIX}/spec-hash"  # what shaped it: a new hash replaces the container
LABEL_BACKUPRUN_UID = f"{PREFIX}/backuprun-uid"  # a BackupRun's task container

# Labels the agent keeps on BackupRuns (`kubectl get br -l nodekeeper.io/phase=Failed`).
LABEL_POLICY = f"{PREFIX}/policy"
LABEL_PHASE = f"{PREFIX}/phase"

# A BackupRun's log chunks: ConfigMaps labelled with the run, annotated with their place.
LABEL_BACKUPRUN = f"{PREFIX}/backuprun"
ANNOTATION_LOG_INDEX = f"{PREFIX}/log-index"
# On a chunk: how many chunks the log has. On a run: set by `nodekeeper backups ingest`, which
# writes the chunks itself, so the agent waits for that many before it records the result.
ANNOTATION_LOG_CHUNKS = f"{PREFIX}/log-chunks"
ANNOTATION_LOG_BYTES = f"{PREFIX}/log-bytes"
ANNOTATION_LOG_TRUNCATED = f"{PREFIX}/log-truncated"

# kopf's finalizer, and the prefix of its progress and diff-base annotations.
FINALIZER = f"{PREFIX}/finalizer"
STORAGE_PREFIX = PREFIX

# Field managers of server-side apply.
AGENT_FIELD_MANAGER = "nodekeeper-agent"  # Workload admission, BackupRun status
RUNTIME_FIELD_MANAGER = "nodekeeper-runtime"  # Workload phase, container and Ready
LOGS_FIELD_MANAGER = "nodekeeper-logs"  # BackupRun log ConfigMaps

# The component of every Event the agent posts (the reporting instance is the node).
COMPONENT = "nodekeeper"
