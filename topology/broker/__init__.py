"""Reading the broker: the management API client and the snapshot of a vhost."""
