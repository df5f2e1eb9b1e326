"""The scheduler: binds unbound pods to nodes, shaped like kube-scheduler's
framework (framework.py: the extension points; plugins/: one module per
plugin; scheduler.py: the loop that watches, decides and binds)."""
