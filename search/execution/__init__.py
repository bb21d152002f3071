"""Where trials run: Ray Tune's trainable (``trainable``), ASHA (``scheduler``), the Tuner and the Ray runtime
(``tuner``), an existing cluster (``cluster``, ``cluster_plan``), storage folders and URIs (``storage``), checkpoints
(``checkpoint``), the per-trial terminal lines (``progress``), latency measured alone (``alone``), deliberate failures
for tests (``faults``) and the one adapter over Ray's private attributes (``ray_adapter``)."""
