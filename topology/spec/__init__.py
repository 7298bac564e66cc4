"""The spec: what a team writes (YAML rendered with jinja2), loaded and validated into plain data."""
