"""Run reports: a self-contained ``report.html`` with the drift, category, segment and arm figures."""

from tastesim.report.html import ReportError, write_report

__all__ = ["ReportError", "write_report"]
