"""Adopt an existing bus: read a vhost's objects back into a spec (`rabbitform import`)."""
