"""`rabbitform ui`: the operations console, a web page over the dead-letter operations and the
status of a spec's bus. It acts with the signed-in user's own broker credentials (held in server
memory only, per session), so the broker's permissions are its authorization; every change is
recorded in an audit trail that outlives restarts.

Standard library HTTP server (wsgiref, threaded) + jinja2 templates + one vanilla JS file: every
asset ships in the package, nothing is fetched at run time.
"""
