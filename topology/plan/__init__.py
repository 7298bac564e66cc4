"""Diffing and planning: compare desired and actual objects, apply the safety rules, render the plan."""
