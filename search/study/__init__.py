"""The Optuna side of the search: the study in RDB storage and the Ray Tune searcher over it (``searcher``), the
one-shot supernet pre-screen (``prescreen``), and the optuna-dashboard command on the study (``optuna_dashboard``).
The samplers live below the settings (:mod:`search.samplers`), which list their names as choices."""
