//! Probes and counters on one port (8080 in the Deployment): `/healthz` (the process and its
//! runtime answer), `/readyz` (the DataPolicy cache has synced with the API server) and
//! `/metrics` (Prometheus text). A minimal HTTP/1.1 responder: one request per connection,
//! bounded reads, no body.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the probes report; updated by the controller.
#[derive(Default)]
pub struct Health {
    /// The DataPolicy cache has synced.
    pub ready: AtomicBool,
    /// Reconciles finished without error.
    pub reconciles: AtomicU64,
    /// Reconciles that failed (retried with backoff).
    pub reconcile_errors: AtomicU64,
    /// DataPolicies whose policy the engine refused (Compiled=False).
    pub compile_errors: AtomicU64,
    /// Rendered objects the API server refused (Programmed=False, ApplyFailed).
    pub apply_errors: AtomicU64,
    /// Namespace policies that cannot take the current mesh policy (they keep the mesh rules
    /// they were programmed with): for the mesh policy's owner.
    pub stale_mesh_policies: AtomicU64,
}

impl Health {
    fn metrics(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "# TYPE meshdlp_controller_reconciles counter\nmeshdlp_controller_reconciles {}\n\
             # TYPE meshdlp_controller_reconcile_errors counter\nmeshdlp_controller_reconcile_errors {}\n\
             # TYPE meshdlp_controller_compile_errors counter\nmeshdlp_controller_compile_errors {}\n\
             # TYPE meshdlp_controller_apply_errors counter\nmeshdlp_controller_apply_errors {}\n\
             # TYPE meshdlp_controller_stale_mesh_policies gauge\nmeshdlp_controller_stale_mesh_policies {}\n\
             # TYPE meshdlp_controller_ready gauge\nmeshdlp_controller_ready {}\n",
            get(&self.reconciles),
            get(&self.reconcile_errors),
            get(&self.compile_errors),
            get(&self.apply_errors),
            get(&self.stale_mesh_policies),
            u8::from(self.ready.load(Ordering::Relaxed)),
        )
    }
}

/// Binds `addr` and serves in the background; returns the bound address (port 0 = any).
pub async fn serve(addr: SocketAddr, health: Arc<Health>) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the health address {addr}"))?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let health = health.clone();
                    tokio::spawn(async move {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(5), answer(stream, &health))
                                .await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "health listener");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn answer(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let mut buf = [0u8; 2048];
    let mut len = 0;
    while len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let mut parts = head.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, body) = match (method, path) {
        ("GET" | "HEAD", "/healthz") => ("200 OK", "ok\n".to_string()),
        ("GET" | "HEAD", "/readyz") if health.ready.load(Ordering::Relaxed) => {
            ("200 OK", "ok\n".to_string())
        }
        ("GET" | "HEAD", "/readyz") => (
            "503 Service Unavailable",
            "the DataPolicy cache has not synced\n".to_string(),
        ),
        ("GET" | "HEAD", "/metrics") => ("200 OK", health.metrics()),
        ("GET" | "HEAD", _) => ("404 Not Found", "not found\n".to_string()),
        _ => ("405 Method Not Allowed", "GET only\n".to_string()),
    };
    let content_type = if path == "/metrics" {
        "text/plain; version=0.0.4"
    } else {
        "text/plain"
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    if method != "HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
