"""The screens' table order is the one of sessions.metric_order (the report and the CLI share it)."""
from sessions.metric_order import HEADLINES, headline_first, metric_rank

__all__ = ["HEADLINES", "headline_first", "metric_rank"]
