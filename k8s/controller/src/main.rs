//! meshdlp-controller: watches `DataPolicy` objects and writes the Istio objects they render to.
//!
//! The binary is glue: the policy is parsed, merged with the mesh policy, compiled and rendered
//! by the engine (`meshdlp::k8s`, the same code as `meshdlp render`); this crate only talks to
//! the API server ([`reconcile`]), serves health probes ([`health`]) and parses flags.
//!
//! The DataPolicy is handled as a `DynamicObject` with an `ApiResource` built from the engine's
//! constants: no schema types on this side (docs/plans/issue8-kubernetes.md, section 2).

mod health;
mod lease;
mod policy;
mod reconcile;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{ArgAction, Parser};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use meshdlp::k8s::{ImageRef, DEFAULT_MESH_ROOT_NAMESPACE};

/// Flags. Booleans take an explicit value (`--events=false`), as the Deployment writes them.
#[derive(Parser, Debug)]
#[command(name = "meshdlp-controller", version, about)]
struct Flags {
    /// A kubeconfig file. Default: in-cluster configuration, else $KUBECONFIG / ~/.kube/config.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,

    /// The filter's OCI image pinned by digest: oci://REGISTRY/REPOSITORY@sha256:<64 hex>.
    #[arg(long, value_parser = parse_image)]
    image: ImageRef,

    /// Istio's root namespace: the DataPolicy there is mesh-wide.
    #[arg(long, default_value = DEFAULT_MESH_ROOT_NAMESPACE)]
    mesh_root_namespace: String,

    /// Hold a Lease in POD_NAMESPACE before reconciling (more than one replica).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,

    /// How long a Lease holds without renewal (the leader renews every third of it).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    lease_duration_seconds: u64,

    /// Record Kubernetes Events (events.k8s.io/v1) about DataPolicies.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    events: bool,

    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
}

fn parse_image(s: &str) -> Result<ImageRef, String> {
    s.parse()
}

async fn client(flags: &Flags) -> anyhow::Result<Client> {
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("no in-cluster configuration and no kubeconfig")?,
    };
    Client::try_from(config).context("building the Kubernetes client")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,kube=warn".into()),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    // The identity and namespace of the Lease come from the Deployment's downward API.
    let pod = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
    let identity = if flags.leader_election {
        match (pod("POD_NAMESPACE"), pod("POD_NAME")) {
            (Some(ns), Some(name)) => Some((ns, name)),
            _ => bail!("--leader-election=true needs POD_NAMESPACE and POD_NAME (the Lease's namespace and holder)"),
        }
    } else {
        None
    };
    let client = client(&flags).await?;
    let health = Arc::new(health::Health::default());
    let server = health::serve(flags.health_addr, health.clone()).await?;
    tracing::info!(
        image = %flags.image,
        mesh_root_namespace = %flags.mesh_root_namespace,
        health_addr = %server,
        events = flags.events,
        leader_election = flags.leader_election,
        "meshdlp-controller starting"
    );
    let settings = reconcile::Settings {
        image: flags.image,
        mesh_root_namespace: flags.mesh_root_namespace,
        events: flags.events,
        instance: pod("POD_NAME"),
    };
    let Some((namespace, name)) = identity else {
        return reconcile::run(client, settings, health).await;
    };
    let mut elector = lease::Elector::new(
        client.clone(),
        &namespace,
        name,
        Duration::from_secs(flags.lease_duration_seconds),
    );
    // A standby replica is ready once it reached the API server (the PodDisruptionBudget
    // counts it); it reconciles nothing until it leads.
    elector
        .acquire(|| health.ready.store(true, Ordering::Relaxed))
        .await?;
    let result = tokio::select! {
        result = reconcile::run(client, settings, health) => result,
        () = elector.keep() => bail!("no longer leading: exiting, so that this replica restarts as standby"),
    };
    // Stopped by a signal while leading: hand the Lease over now, not a lease duration later.
    elector.release().await;
    result
}
