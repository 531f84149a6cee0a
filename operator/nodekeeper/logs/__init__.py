"""The log pipeline: discovery, inotify, json-file parsing, rotation, checkpoints, store, sinks.

Empty until the log-pipeline work lands; the package exists so the layer contracts name it.
"""
