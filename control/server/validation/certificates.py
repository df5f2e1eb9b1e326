"""CertificateSigningRequest rules (Kubernetes' certificates.k8s.io/v1).

spec.request must be a PEM certificate signing request whose signature
holds (an ECDSA P-256 key, as the cluster's certificates have); signerName
one of the signers this cluster serves; usages known, without repeats, and
including the one the signer issues for; expirationSeconds at least 600.
The spec never changes after creation. Conditions are Approved, Denied or
Failed, never both Approved and Denied, and a decision once made stays.
"""

from __future__ import annotations

from google.protobuf.message import Message

from control.api import certificates as csrs
from control.api.manifest import FieldError
from control.auth.pki import load_csr
from control.server.validation.field_errors import at_least, forbidden, invalid, one_of, required


def validate_certificate_signing_request(csr: Message, old: Message | None) -> list[FieldError]:
    spec = csr.spec
    errors: list[FieldError] = []
    if not spec.request:
        errors.append(required("spec.request"))
    else:
        try:
            load_csr(spec.request)
        except ValueError as err:
            errors += invalid("spec.request", "<omitted>", [str(err)])
    if not spec.signer_name:
        errors.append(required("spec.signerName"))
    else:
        errors += one_of("spec.signerName", spec.signer_name, csrs.SIGNERS)
    errors += _usage_errors(spec)
    if spec.HasField("expiration_seconds"):
        errors += at_least("spec.expirationSeconds", spec.expiration_seconds, csrs.MIN_EXPIRATION_SECONDS)
    errors += _condition_errors(csr)
    if old is not None:
        if spec != old.spec:
            errors.append(FieldError("spec", "Invalid value", "field is immutable"))
        for decision in (csrs.APPROVED, csrs.DENIED):
            if csrs.condition(old, decision) is not None and csrs.condition(csr, decision) is None:
                errors.append(forbidden("status.conditions", f"the {decision} condition may not be removed"))
        if old.status.certificate and csr.status.certificate != old.status.certificate:
            errors.append(FieldError("status.certificate", "Invalid value", "field is immutable once set"))
    return errors


def _usage_errors(spec: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    if not spec.usages:
        return [required("spec.usages")]
    seen = set()
    for i, usage in enumerate(spec.usages):
        errors += one_of(f"spec.usages[{i}]", usage, csrs.USAGES)
        if usage in seen:
            errors.append(FieldError(f"spec.usages[{i}]", "Duplicate value", "", usage))
        seen.add(usage)
    allowed = csrs.SIGNER_USAGES.get(spec.signer_name)
    if allowed is not None and not errors:
        permitted, needed = allowed
        for i, usage in enumerate(spec.usages):
            if usage not in permitted:
                errors += invalid(f"spec.usages[{i}]", usage, [f"the signer {spec.signer_name} does not issue it"])
        if needed not in spec.usages:
            errors += invalid("spec.usages", ", ".join(spec.usages),
                              [f'the signer {spec.signer_name} needs the usage "{needed}"'])
    return errors


def _condition_errors(csr: Message) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, cond in enumerate(csr.status.conditions):
        errors += one_of(f"status.conditions[{i}].type", cond.type, csrs.CONDITION_TYPES)
        errors += one_of(f"status.conditions[{i}].status", cond.status, ("True", "False", "Unknown"))
    if csrs.condition(csr, csrs.APPROVED) is not None and csrs.condition(csr, csrs.DENIED) is not None:
        errors.append(invalid("status.conditions", "Approved, Denied",
                              ["Approved and Denied conditions are mutually exclusive"])[0])
    if csr.status.certificate and csrs.condition(csr, csrs.APPROVED) is None:
        errors.append(forbidden("status.certificate", "only an approved request is issued a certificate"))
    return errors
