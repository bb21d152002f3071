"""Where trials run: Ray Tune's trainable (``trainable``), ASHA (``scheduler``), the Tuner and the Ray runtime
(``tuner``), an existing cluster and the plan's execution on it (``cluster``), storage folders and URIs
(``storage``), trial checkpoints (``checkpoint``), the per-trial terminal lines (``progress``), what the driver
measures before any trial (``calibration``), latency measured alone (``alone``), deliberate failures for the tests
only (``faults``) and the one adapter over Ray's private attributes (``ray_adapter``). Reads the plan
(:mod:`search.settings.plan`); imports nothing of the study, tracking or later phases."""
