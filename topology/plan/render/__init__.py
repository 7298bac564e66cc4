"""Renderers of a plan (text, Markdown). They print; they never decide."""
