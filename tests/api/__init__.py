"""Tests of the API contract in Python (control.api)."""
