"""Bringing a machine to the point where an agent can run pods on it.

Used by ``sampan up`` (and by the tests, which need the same things): the
pause and busybox images built locally from Debian's busybox-static
(``images``), and a private containerd with a CRI configuration that works on
this kind of machine (``containerd``). Nothing here runs inside the agent.
"""
