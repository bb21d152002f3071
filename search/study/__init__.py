"""The Optuna side of the search: the study in RDB storage and the Ray Tune searcher over it (``searcher``), the
samplers a search can use (``samplers``), and the optuna-dashboard command on the study (``optuna_dashboard``)."""
