"""The small core every other package may use and which imports nothing of the project: the
registries' class (registry.py), process signals outside Lightning's loops (signals.py) and
all-or-nothing file writes (files.py)."""
