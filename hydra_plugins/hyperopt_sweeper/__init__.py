"""Hydra sweeper plugin: hyperopt's TPE (or random search) with resume and failure tolerance.

``hyperopt_sweeper.py`` (the class Hydra finds) and ``config.py`` are imported by Hydra's plugin
scan at the start of every Hydra app, so they import nothing heavy; ``_impl.py`` and ``_space.py``
(hyperopt, numpy) are imported when a sweep is set up — the layout of Hydra's own Optuna sweeper.

The modules here do not use ``from __future__ import annotations``: Hydra's plugin scanner
executes them outside ``sys.modules``, where dataclasses cannot resolve string annotations.
"""
