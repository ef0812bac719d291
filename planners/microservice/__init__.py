"""Layer-aware microservice placement (Gu et al., INFOCOM 2022): solvers and evaluator.

``kind.py`` registers the ``microservice`` kind and imports the solver modules.
"""
