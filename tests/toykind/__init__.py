"""A complete toy problem kind in one folder: models, evaluator, one solver, one registration.

The platform tests register it inside ``scoped_registry()`` and use it through
the Python API and the CLI; nothing outside this folder names it.
"""
