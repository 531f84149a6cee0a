"""BackupRun services: executing a task, reading its results, storing its log, keeping history.

The handlers in ``handlers/backupruns.py`` call these; they reach Docker through ``runtime`` and
the API server through ``kube``, never directly (import-linter keeps it so).

- :mod:`.outcomes` what an exit code (restic's conventions) or an ingested result means;
- :mod:`.restic` restic's ``--json`` output, parsed leniently into a summary and an error;
- :mod:`.logchunks` the log as zstd-compressed chunks, cut in the middle over a cap;
- :mod:`.runlogs` those chunks stored in ConfigMaps owned by the run, and read back;
- :mod:`.tasks` one run as one labelled container, followed to its end across restarts;
- :mod:`.history` labels kept current and history limits per policy and node;
- :mod:`.metrics` the backup metrics, rebuilt from the BackupRuns at start-up;
- :mod:`.commands` what ``nodekeeper backups list|show|logs|ingest`` do.
"""
