"""Pipeline planning (Luo et al., INFOCOM 2022): formulations, heuristics, baselines, simulator.

``kind.py`` registers the ``pipeline`` kind and imports the solver modules.
"""
