"""Sections of the run report (``reports.run_report``); each takes a :class:`~reports.sections.common.RunData`
and returns an escaped HTML fragment, or a "not available in this run" note when its inputs are missing."""
