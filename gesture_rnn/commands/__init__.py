"""What the root commands run: ``train`` (train.py, tune.py's trials), ``evaluate``, ``predict``,
``personalize``, and ``cli`` (their Hydra glue: one-line errors, exit codes, short spellings)."""
