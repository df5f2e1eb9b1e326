"""Leader election on a Lease: one replica of the control service leads.

Every replica serves the API, but only one may run the scheduler and the
controllers, or two of them would act on the same objects. They agree on
which one through a coordination.k8s.io/v1 Lease (by default
``kube-system/sampan-control-plane``), the way client-go's leader election
does:

- The Lease's spec is the record: ``holderIdentity`` (who leads),
  ``leaseDurationSeconds`` (how long the others wait), ``acquireTime``,
  ``renewTime`` (microsecond timestamps, so every renewal changes the record)
  and ``leaseTransitions`` (how many times the holder changed).
- Every write is a compare-and-swap on the Lease's resourceVersion (a create
  when there is none), so of two replicas racing for it exactly one wins.
- Expiry is judged only by the candidate's own monotonic clock: a candidate
  notes when it last saw the record change, and takes the lease once
  ``leaseDurationSeconds`` have passed since then with no further change.
  Clocks of different machines are never compared; the timestamps in the
  record are for people.
- A candidate looks every retry period (less up to a fifth, so replicas
  started together drift apart), and also exactly when the lease it
  observes runs out. A dead leader's lease is therefore taken over at most
  lease duration + retry period after the leader's last renewal.
- The leader renews every retry period. Its renew deadline counts from the
  moment it sent its last successful renewal: if it has not renewed again
  within the deadline (the API unreachable, writes refused), or it finds
  another holder in the record, it stops leading at once. Stopping cancels
  the work it runs before anyone else may take the lease: the others count
  the lease duration from a later moment (when they saw that renewal), and
  the lease duration exceeds the renew deadline.
- When the elector is cancelled while leading (a clean shutdown), it stops
  the work and, with ``release_on_cancel``, writes an empty holder with a
  one-second lease, so a replacement takes over at once.

``LeaderElector.run`` campaigns, leads, and after losing the lease campaigns
again, for as long as it runs; each term calls ``lead()`` afresh, so the work
starts from a clean state (new caches) every time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from control.api import errors
from control.client import Client
from protos.api.v1 import core_pb2

log = logging.getLogger("sampan.leaderelection")

LEASE_NAMESPACE = "kube-system"
LEASE_NAME = "sampan-control-plane"
# Candidates retry after between (1 - RETRY_JITTER) and 1 retry periods.
RETRY_JITTER = 0.2
# Released leases say this duration (client-go writes one second too).
RELEASED_LEASE_SECONDS = 1


def default_identity() -> str:
    """This replica's name in the Lease: the hostname and a random suffix,
    so two replicas on one machine (or a restart) are told apart."""
    return f"{socket.gethostname()}_{secrets.token_hex(4)}"


def micro_time() -> str:
    """Now as an RFC 3339 timestamp with microseconds (a Lease's MicroTime)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaderElectionConfig:
    """Who campaigns for which Lease, and the timing (defaults are Kubernetes')."""

    identity: str = field(default_factory=default_identity)
    # How long the others wait, after they last saw the record change, before taking the lease.
    lease_duration: float = 15.0
    # How long the leader keeps leading without a successful renewal.
    renew_deadline: float = 10.0
    # How often the leader renews and candidates look.
    retry_period: float = 2.0
    namespace: str = LEASE_NAMESPACE
    name: str = LEASE_NAME
    # On a clean shutdown, give the lease up so another replica takes over at once.
    release_on_cancel: bool = True

    def __post_init__(self) -> None:
        if not self.identity:
            raise ValueError("leader election: identity must not be empty")
        for name in ("lease_duration", "renew_deadline", "retry_period"):
            if not getattr(self, name) > 0:
                raise ValueError(f"leader election: {name} must be greater than 0, got {getattr(self, name)}")
        if self.lease_duration != int(self.lease_duration):
            raise ValueError("leader election: lease_duration must be a whole number of seconds "
                             f"(the Lease records leaseDurationSeconds), got {self.lease_duration}")
        if self.lease_duration <= self.renew_deadline:
            raise ValueError(f"leader election: lease_duration ({self.lease_duration}) must be greater than "
                             f"renew_deadline ({self.renew_deadline})")
        if self.renew_deadline <= self.retry_period:
            raise ValueError(f"leader election: renew_deadline ({self.renew_deadline}) must be greater than "
                             f"retry_period ({self.retry_period})")


class LeaderElector:
    """Campaigns for the Lease and runs ``lead()`` while holding it.

    ``lead`` is called at the start of each term and must run until
    cancelled; if it ends on its own, the term ends (the lease is released)
    and the campaign starts over. ``on_change(leading)`` is told each time
    leadership is gained or lost. ``clock`` is a monotonic clock in seconds.
    """

    def __init__(
        self,
        api: Client,
        config: LeaderElectionConfig,
        *,
        lead: Callable[[], Awaitable[None]],
        on_change: Callable[[bool], None] = lambda leading: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.config = config
        self._lead = lead
        self._on_change = on_change
        self._clock = clock
        self.is_leader = False
        # The last record seen, when it was first seen (clock), and the last Lease read or written.
        self._observed_record: bytes | None = None
        self._observed_at = 0.0
        self._observed_duration = 0.0
        self._lease: core_pb2.Lease | None = None
        # When (clock) the last successful acquisition or renewal was sent.
        self.renewed_at: float | None = None

    @property
    def identity(self) -> str:
        return self.config.identity

    @property
    def observed_holder(self) -> str:
        """The holder in the last record this elector saw ("" when none)."""
        return self._lease.spec.holder_identity if self._lease is not None else ""

    async def run(self) -> None:
        """Campaign and lead, again after every lost term, until cancelled."""
        while True:
            await self.acquire()
            await self._lead_one_term()

    # ---------------------------------------------------------------- campaign

    async def acquire(self) -> None:
        """Return once this replica holds the lease."""
        waiting_for = None
        while True:
            try:
                if await self.try_acquire_or_renew():
                    return
            except Exception as err:  # whatever the cause, try again later
                _log_failure(f"cannot read or write lease {self.config.namespace}/{self.config.name} "
                             "(will retry)", err)
            if self.observed_holder not in ("", self.identity, waiting_for):
                waiting_for = self.observed_holder
                log.info("lease %s/%s is held by %s; %s waits", self.config.namespace, self.config.name,
                         waiting_for, self.identity)
            await asyncio.sleep(self._until_next_attempt())

    def _until_next_attempt(self) -> float:
        """A jittered retry period, or less when the observed lease runs out sooner."""
        period = self.config.retry_period * (1 - RETRY_JITTER * random.random())
        if self._observed_record is not None and self.observed_holder:
            expires_in = self._observed_at + self._observed_duration - self._clock()
            if expires_in > 0:  # (once it has run out, a failed attempt waits a whole period)
                period = min(period, expires_in + 0.001)
        return period

    async def try_acquire_or_renew(self) -> bool:
        """One attempt to take or keep the lease; True when this replica holds it now.

        False when another holder's lease has not yet run out (by this
        replica's observation), or another replica won the race. API
        errors other than those races are raised.
        """
        config = self.config
        sent_at = self._clock()
        try:
            lease = await self.api.get("Lease", config.name, namespace=config.namespace)
        except errors.NotFoundError:
            lease = core_pb2.Lease(api_version="coordination.k8s.io/v1", kind="Lease")
            lease.metadata.name = config.name
            lease.metadata.namespace = config.namespace
            self._fill_record(lease.spec, acquired=True, transitions=0)
            try:
                created = await self.api.create(lease)
            except errors.AlreadyExistsError:
                return False
            self._observe(created)
            self.renewed_at = sent_at
            return True
        self._observe(lease)
        spec = lease.spec
        holder = spec.holder_identity
        if holder and holder != self.identity and self._clock() < self._observed_at + self._observed_duration:
            return False
        attempt = core_pb2.Lease()
        attempt.CopyFrom(lease)  # keeps the resourceVersion: the update is a compare-and-swap
        if holder == self.identity:
            self._fill_record(attempt.spec, acquired=False, transitions=spec.lease_transitions)
        else:
            self._fill_record(attempt.spec, acquired=True, transitions=spec.lease_transitions + 1)
        try:
            updated = await self.api.update(attempt)
        except errors.ConflictError:
            return False
        self._observe(updated)
        self.renewed_at = sent_at
        return True

    def _fill_record(self, spec: core_pb2.LeaseSpec, *, acquired: bool, transitions: int) -> None:
        now = micro_time()
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = int(self.config.lease_duration)
        spec.renew_time = now
        if acquired:
            spec.acquire_time = now
        spec.lease_transitions = transitions

    def _observe(self, lease: core_pb2.Lease) -> None:
        """Remember lease; restart the expiry count when its record changed."""
        record = lease.spec.SerializeToString(deterministic=True)
        if record != self._observed_record:
            self._observed_record = record
            self._observed_at = self._clock()
            self._observed_duration = float(lease.spec.lease_duration_seconds)
        self._lease = lease

    # ------------------------------------------------------------------- lead

    async def _lead_one_term(self) -> None:
        """Run the work while renewing; stop it as soon as the lease may be lost."""
        self._set_leading(True)
        log.info("%s became leader (lease %s/%s)", self.identity, self.config.namespace, self.config.name)
        work = asyncio.create_task(self._lead(), name="leader work")
        try:
            reason = await self._renew_until_lost(work)
        except BaseException:  # cancelled: the service is shutting down
            await self._stop(work)
            log.info("%s stops leading: shutting down", self.identity)
            if self.config.release_on_cancel:
                await self._release()
            raise
        await self._stop(work)
        log.warning("%s lost leadership: %s", self.identity, reason)
        if work.done() and not work.cancelled():
            # The work ended by itself: let another replica (or this one, afresh) lead.
            await self._release()
            await asyncio.sleep(self.config.retry_period)

    async def _renew_until_lost(self, work: asyncio.Task) -> str:
        """Renew every retry period; return why leadership ended."""
        config = self.config
        while True:
            await asyncio.wait({work}, timeout=config.retry_period)
            if work.done():
                error = None if work.cancelled() else work.exception()
                return f"the work it led ended ({error!r})" if error else "the work it led ended"
            assert self.renewed_at is not None
            deadline = self.renewed_at + config.renew_deadline
            while True:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    return f"no renewal within the renew deadline ({config.renew_deadline:g} s)"
                try:
                    async with asyncio.timeout(remaining):
                        renewed = await self.try_acquire_or_renew()
                except TimeoutError:
                    return f"no renewal within the renew deadline ({config.renew_deadline:g} s)"
                except Exception as err:  # a failed renewal, whatever the cause
                    _log_failure("lease renewal failed (will retry until the renew deadline)", err)
                    renewed = False
                if renewed:
                    break
                if self.observed_holder not in ("", self.identity):
                    return f"the lease is held by {self.observed_holder}"
                await asyncio.sleep(min(config.retry_period, max(deadline - self._clock(), 0.0)))

    async def _stop(self, work: asyncio.Task) -> None:
        """Cancel the work and wait for it to end; then this replica no longer leads."""
        work.cancel()
        # Others may take the lease once the margin between renew deadline and lease duration is gone.
        margin = self.config.lease_duration - self.config.renew_deadline
        _, pending = await asyncio.wait({work}, timeout=margin)
        if pending:
            log.error("%s: the work it led has not stopped %g s after being cancelled; "
                      "another replica may lead before it does", self.identity, margin)
        await asyncio.gather(work, return_exceptions=True)
        self._set_leading(False)

    async def _release(self) -> None:
        """Give the lease up (empty holder, one-second duration) if this replica still holds it."""
        lease = self._lease
        if lease is None or lease.spec.holder_identity != self.identity:
            return
        released = core_pb2.Lease()
        released.CopyFrom(lease)
        now = micro_time()
        released.spec.ClearField("holder_identity")
        released.spec.lease_duration_seconds = RELEASED_LEASE_SECONDS
        released.spec.acquire_time = released.spec.renew_time = now
        try:
            async with asyncio.timeout(self.config.renew_deadline):
                self._observe(await self.api.update(released))
        except (errors.APIError, TimeoutError) as err:
            log.info("lease %s/%s not released (it expires instead): %s",
                     self.config.namespace, self.config.name, err)
            return
        log.info("%s released lease %s/%s", self.identity, self.config.namespace, self.config.name)

    def _set_leading(self, leading: bool) -> None:
        if leading != self.is_leader:
            self.is_leader = leading
            self._on_change(leading)


def _log_failure(message: str, err: Exception) -> None:
    """API errors are expected (the API unreachable, a race): one line. Anything else is a bug: a traceback."""
    if isinstance(err, errors.APIError):
        log.info("%s: %s", message, err)
    else:
        log.error("%s", message, exc_info=err)
