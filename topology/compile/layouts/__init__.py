"""Layouts: the objects a bus is built from; compile picks one by the spec's `layout` key."""
