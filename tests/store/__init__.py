"""Tests of the storage backends (control.store)."""
