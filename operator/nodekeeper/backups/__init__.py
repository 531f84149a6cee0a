"""BackupRun services: task execution, restic summary parsing, log chunks, history queries.

Empty until the BackupRun work lands; the package exists so the layer contracts name it.
"""
