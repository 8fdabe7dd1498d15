"""Hydra sweeper plugin: hyperopt's TPE (or random search) with resume and failure tolerance.

The modules here do not use ``from __future__ import annotations``: Hydra's plugin scanner
executes them outside ``sys.modules``, where dataclasses cannot resolve string annotations.
"""
