"""The report: summary tables, hypotheses computed from the evaluations, plots."""
