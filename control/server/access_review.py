"""The AccessReview call: may this user do this? (``sampan auth can-i``)

Kubernetes answers that question with SelfSubjectAccessReview and
SubjectAccessReview objects that are created and answered in their status,
never stored; here one unary call takes a SubjectAccessReview and returns it
with its status filled in (protos/api/v1/authorization.proto):

- spec.user and spec.groups empty: a review of the caller itself, which any
  authenticated caller may ask (Kubernetes' system:basic-user grants
  selfsubjectaccessreviews to everyone);
- otherwise a review of that user and those groups, exactly as given (no
  system:authenticated is added), which the caller may ask only when the
  authorizers allow it ``create`` on ``subjectaccessreviews`` in the
  ``authorization.k8s.io`` group. That is how ``can-i --as`` works here:
  rather than impersonating (kubectl's way, which needs ``impersonate`` on
  users), the CLI asks a SubjectAccessReview about that user; the
  permission it needs only reveals permissions, never lends them.

The answer comes from the gate's own authorizer, so it is the one a real
request would get (a plain-text service allows everything, and says so).
"""

from __future__ import annotations

from control.api import errors
from control.auth.authorizer import Attributes, forbidden
from control.auth.identity import UserInfo
from control.server.gate import RequestGate, RequestInfo
from protos.api.v1 import authorization_pb2

AUTHORIZATION_GROUP = "authorization.k8s.io"
API_VERSION = AUTHORIZATION_GROUP + "/v1"


class AccessReviewer:
    def __init__(self, gate: RequestGate) -> None:
        self.gate = gate

    async def review(self, request: authorization_pb2.SubjectAccessReview,
                     info: RequestInfo) -> tuple[str, authorization_pb2.SubjectAccessReview]:
        spec = request.spec
        kind = "SubjectAccessReview" if (spec.user or spec.groups) else "SelfSubjectAccessReview"
        info.object = request
        wanted = spec.resource_attributes
        problems = [f"spec.resourceAttributes.{field}: Required value"
                    for field in ("verb", "resource") if not getattr(wanted, field)]
        if problems:
            listed = ", ".join(problems)
            raise errors.InvalidError(f'{kind} is invalid: {listed if len(problems) == 1 else f"[{listed}]"}')
        if kind == "SubjectAccessReview":
            caller = Attributes(user=info.user, verb="create", resource="subjectaccessreviews",
                                api_group=AUTHORIZATION_GROUP)
            decision = await self.gate.authorizer.authorize(caller)
            if not decision.allowed:
                raise forbidden(caller, decision.reason)
            subject = UserInfo(spec.user, tuple(spec.groups))
        else:
            subject = info.user
        attrs = Attributes(user=subject, verb=wanted.verb, resource=wanted.resource, api_group=wanted.group,
                           subresource=wanted.subresource, namespace=wanted.namespace, name=wanted.name)
        decision = await self.gate.authorizer.authorize(attrs)
        answer = authorization_pb2.SubjectAccessReview()
        answer.CopyFrom(request)
        answer.api_version, answer.kind = API_VERSION, kind
        answer.status.allowed = decision.allowed
        if decision.reason:
            answer.status.reason = decision.reason
        return kind, answer
