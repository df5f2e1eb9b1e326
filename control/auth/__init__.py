"""Who is asking, and may they: the control service's security.

A request passes the API's gate (control/server/gate.py) in this order, as in
the Kubernetes API server's filter chain:

1. **authentication** (``authenticator.py``): the client certificate (CN is
   the user, O the groups) or a bearer token gives a ``UserInfo``
   (``identity.py``); nothing that proves an identity is refused UNAUTHENTICATED.
2. **fairness** (``fairness.py``): a bound on one identity's requests in
   flight, answered RESOURCE_EXHAUSTED with a retry hint.
3. **authorization** (``authorizer.py``): the request's ``Attributes`` (user,
   verb, resource, namespace, name) go to the authorizers in turn; the first
   that allows wins (RBAC is purely additive), else PERMISSION_DENIED naming
   the verb, resource and namespace.
4. **admission** (``escalation.py``): a write of a Role, ClusterRole or
   binding may not grant what its writer does not hold (unless the writer
   holds ``escalate`` or ``bind``), judged on the object about to be stored.
5. **audit** (``audit.py``): one JSON line per mutating request.

The certificates themselves come from ``pki.py`` (the cluster CA and what it signs).
Secrets at rest are encrypted with the keys ``encryption.py`` reads (the store
layer that does it is control/store/encryption.py).
"""
