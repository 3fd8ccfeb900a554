//! Leader election with a `coordination.k8s.io/v1` Lease in the controller's namespace, held
//! under the pod's name (POD_NAMESPACE, POD_NAME from the Deployment's downward API).
//!
//! As client-go's elector: a Lease is taken when it is free, ours, or has not changed for its
//! whole duration *as observed by this process* (no comparison of clocks between pods). Writes
//! use the resourceVersion read (optimistic concurrency: a 409 means another replica won). The
//! leader renews every third of the duration; when it cannot renew within the duration it exits,
//! so a pod that may have lost the Lease never keeps writing (the kubelet restarts it as standby).

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

    /// Waits until this process holds the Lease. `on_contact` runs after the first answer from
    /// the API server (a standby replica is ready too).
    pub async fn acquire(&mut self, on_contact: impl Fn()) -> anyhow::Result<()> {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew().await {
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

    /// Renews until a renewal is impossible for a whole lease duration; then returns (the
    /// caller must stop).
    pub async fn keep(&mut self) {
        let mut last_renewal = Instant::now();
        loop {
            tokio::time::sleep(self.retry_period()).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = Instant::now(),
                Ok(false) => {
                    tracing::error!(identity = %self.identity, "the Lease was taken by another replica");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "renewing the Lease"),
            }
            if last_renewal.elapsed() >= self.duration {
                tracing::error!(identity = %self.identity, "the Lease could not be renewed in time");
                return;
            }
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
        match self
            .api
            .replace(LEASE_NAME, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}
