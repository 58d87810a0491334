"""Run records -> tables, report and figures (docs/analysis.md)."""


class AnalysisError(RuntimeError):
    """A problem with the inputs of the analysis (no runs found, W&B unreachable, an unknown
    metric, ...): the command line reports it as one line and exits with status 2."""
