"""The studies behind ``python study.py``: grids of ``train.py`` runs, evaluated and reported.

``runner.py`` takes every study through the same stages (plan -> validate -> train what is
missing -> evaluate -> report); each study is a thin definition on it: ``gap_grid.py`` (the
NTREX-128 gap study, encoders x methods x languages) and ``afriqa_grid.py`` (the AfriQA study,
teachers x methods x seeds). Their reports are written by ``evaluation/report.py``. A new study
is a new definition (a ``runner.Study``) and a ``kind`` for study.py to pick it.
"""
