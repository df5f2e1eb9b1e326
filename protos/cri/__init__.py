"""The Kubernetes Container Runtime Interface (CRI), as far as Sampan uses it."""
