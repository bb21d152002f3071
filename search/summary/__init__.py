"""What a finished search reports: the :class:`~search.summary.front.SearchSummary` and its front (``front``), the
report's data (``report_data``, the one module ``dashboards`` reads) gathered from the stores (``collect``),
pareto.csv/png (``pareto_files``), the report pages (``reports``) and the printed summary (``console``)."""
