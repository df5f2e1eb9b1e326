"""Shared test harness: real components started by the tests themselves."""
