"""Compiling a spec to broker objects (exchanges, queues, bindings), and their definitions-JSON form."""
