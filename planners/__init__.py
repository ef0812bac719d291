"""Problem-specific planners, one subpackage per kind.

Kinds are discovered, not listed: every subpackage with a ``kind`` module is
imported by :func:`distplan.models.kinds.discover`, and that module registers the
kind and its solvers. ``planners/common/`` holds what several kinds share.
"""
