"""The `rabbitform` command line: a thin layer of one module per command over the pure core."""
