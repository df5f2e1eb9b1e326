"""Tests of the API service (control.server)."""
