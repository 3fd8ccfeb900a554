//! Leader election with a `coordination.k8s.io/v1` Lease in the controller's namespace, held
//! under the pod's name (POD_NAMESPACE, POD_NAME from the Deployment's downward API).
//!
//! As client-go's elector: a Lease is taken when it is free, ours, or has not changed for its
//! whole duration *as observed by this process* (no comparison of clocks between pods). Writes
//! use the resourceVersion read (optimistic concurrency: a 409 means another replica won). The
//! leader renews every third of the duration; when it has not renewed for two thirds of it (the
//! renew deadline, client-go's 10 s of 15) it exits, so a pod that may have lost the Lease never
//! keeps writing (the kubelet restarts it as standby). Every call is bounded by a timeout: a hung
//! API server cannot keep a stale leader believing it leads. A leader that stops (SIGTERM)
//! releases the Lease, so a standby takes over at its next poll, not a lease duration later.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

/// The Lease's name.
pub const LEASE_NAME: &str = "meshdlp-controller";

pub struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    /// The holder and renew time last seen, and when they were first seen so.
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(client: Client, namespace: &str, identity: String, duration: Duration) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            identity,
            duration,
            observed: None,
        }
    }

    fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long the leader may go without a renewal: a standby takes over no earlier than one
    /// lease duration after it saw the last renewal, so the leader stops a third before.
    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Waits until this process holds the Lease. `on_contact` runs after the first answer from
    /// the API server (a standby replica is ready too).
    pub async fn acquire(&mut self, on_contact: impl Fn()) -> anyhow::Result<()> {
        let mut waiting_logged = false;
        loop {
            let attempt =
                tokio::time::timeout(self.retry_period(), self.try_acquire_or_renew()).await;
            match attempt.unwrap_or_else(|_| Err(timed_out())) {
                Ok(true) => {
                    on_contact();
                    tracing::info!(identity = %self.identity, "leading (Lease {LEASE_NAME})");
                    return Ok(());
                }
                Ok(false) => {
                    on_contact();
                    if !waiting_logged {
                        tracing::info!(identity = %self.identity, "standby: another replica holds the Lease");
                        waiting_logged = true;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reading the Lease"),
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews until no renewal succeeded for the renew deadline; then returns (the caller must
    /// stop). A renewal counts from when it was sent, and no call outlives the deadline.
    pub async fn keep(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period()).await;
            let deadline = last_renewal + self.renew_deadline();
            let sent = Instant::now();
            let left = deadline.saturating_duration_since(sent);
            if left.is_zero() {
                break;
            }
            match tokio::time::timeout(left.min(self.retry_period()), self.try_acquire_or_renew())
                .await
            {
                Ok(Ok(true)) => last_renewal = sent,
                Ok(Ok(false)) => {
                    tracing::error!(identity = %self.identity, "the Lease was taken by another replica");
                    return;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "renewing the Lease"),
                Err(_) => tracing::warn!("renewing the Lease: no answer in time"),
            }
            if last_renewal.elapsed() >= self.renew_deadline() {
                break;
            }
        }
        tracing::error!(identity = %self.identity, "the Lease could not be renewed in time");
    }

    /// Gives the Lease up if this process holds it (on shutdown): the holder is cleared, so a
    /// standby takes it at its next poll. Bounded by a retry period; failures are only logged
    /// (the Lease then expires by itself).
    pub async fn release(&mut self) {
        let period = self.retry_period();
        match tokio::time::timeout(period, self.try_release()).await {
            Ok(Ok(true)) => tracing::info!(identity = %self.identity, "released the Lease"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing the Lease"),
            Err(_) => tracing::warn!("releasing the Lease: no answer in time"),
        }
    }

    async fn try_release(&mut self) -> Result<bool, kube::Error> {
        let Some(mut lease) = self.api.get_opt(LEASE_NAME).await? else {
            return Ok(false);
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(false);
        }
        // As client-go's release: no holder, a one-second duration, renewed now.
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        self.replace(&lease).await
    }

    /// Writes `lease` over the stored one; `false` when another writer got there first (409).
    async fn replace(&self, lease: &Lease) -> Result<bool, kube::Error> {
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let seconds = i32::try_from(self.duration.as_secs())
            .unwrap_or(i32::MAX)
            .max(1);
        let Some(current) = self.api.get_opt(LEASE_NAME).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(LEASE_NAME.into()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let record = format!(
            "{holder}/{}",
            spec.renew_time
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default()
        );
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record, at));
                at
            }
        };
        let held_for = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(seconds)).unwrap_or(0),
        );
        let ours = holder == self.identity;
        if !ours && !holder.is_empty() && first_seen.elapsed() < held_for {
            return Ok(false);
        }
        let mut lease = current;
        let mut next = spec;
        if !ours {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(next.lease_transitions.unwrap_or(0) + 1);
        }
        next.holder_identity = Some(self.identity.clone());
        next.lease_duration_seconds = Some(seconds);
        next.renew_time = Some(now);
        lease.spec = Some(next);
        self.replace(&lease).await
    }
}

/// A call that did not answer within its bound, as a client error.
fn timed_out() -> kube::Error {
    kube::Error::Service(Box::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the API server in time",
    )))
}
