"""The confirmation phase (``phase``: the front and the controls retrained on fresh seeds and scored on the test
split) and its statistics (``statistics``: intervals, the paired difference to the plain backbone, the verdict)."""
