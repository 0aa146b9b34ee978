"""Reports: our numbers beside the paper's (tables.py), plots (plots.py), paper tables (paper.py).

Reports read plain records (one dict per run-cell, the rows of ``runs.csv``), so they do not
depend on how the numbers were produced.
"""

from __future__ import annotations

from rsmiss.reports.paper import PaperEntry, load_table, lookup
from rsmiss.reports.tables import RUN_COLUMNS, ReportHeader, write_report

__all__ = ["RUN_COLUMNS", "PaperEntry", "ReportHeader", "load_table", "lookup", "write_report"]
