"""Run reports: a self-contained ``report.html`` with the drift, category, segment and arm figures
(``tastesim.report.html.write_report``)."""
