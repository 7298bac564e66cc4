"""Applying a plan to the broker, and verifying that it took effect."""
