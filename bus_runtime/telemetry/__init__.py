"""Observability hooks: Prometheus metrics (`metrics`) and OpenTelemetry traces (`tracing`).

Both are optional extras (`rabbitform[metrics]`, `rabbitform[tracing]`); the runtime calls the
hooks in `hooks`, which cost one empty-list check when nothing is installed.
"""
