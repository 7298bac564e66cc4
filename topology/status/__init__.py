"""`rabbitform status`: the live state of a spec's queues, as plain data (model.py), read from
the management API (read.py) and printed (render.py)."""
