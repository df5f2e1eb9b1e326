"""The API contract in Python, shared by the server and every client."""
