"""Prometheus alerting rules for a spec's bus (`rabbitform alerts`)."""

from topology.alerts.rules import BROKER_METRICS, Thresholds, alert_rules, render_rules

__all__ = ["BROKER_METRICS", "Thresholds", "alert_rules", "render_rules"]
