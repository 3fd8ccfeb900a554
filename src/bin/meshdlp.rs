//! `meshdlp`: test policies and bodies before they reach a cluster. Glue only: all decisions are
//! the engine's.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use meshdlp::manifest::Manifest;
use meshdlp::{
    Decision, Detokenizer, Direction, Exchange, Finding, Inspection, Policy, PolicyError,
};
use serde::Deserialize;

#[derive(Parser)]
#[command(
    name = "meshdlp",
    version,
    about = "Data-loss prevention for service meshes: check policies, redact and scan bodies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate and compile a policy or a DataPolicy; print errors with their location.
    Check {
        /// Policy file (YAML or JSON): a policy manifest, or a DataPolicy object (by its `kind`).
        policy: PathBuf,
    },
    /// Print a policy as compact JSON (the form Envoy's plugin configuration takes).
    Compile { policy: PathBuf },
    /// Apply a policy to a body from stdin and print the result (exit 3 when blocked).
    Redact {
        #[command(flatten)]
        target: Target,
        /// Print the findings to stderr.
        #[arg(long)]
        explain: bool,
    },
    /// Print findings only.
    Scan {
        #[command(flatten)]
        target: Target,
        /// Read lines {"id", "body", "content_type"?} and write one line of findings per input.
        #[arg(long)]
        jsonl: bool,
    },
    /// Reverse tokens (`tok:<keyId>:...`) in stdin, for authorised use.
    Detokenize {
        /// Environment variable holding the key secret.
        #[arg(long)]
        key_env: String,
        /// Only reverse tokens of this key id (default: any id, with this secret).
        #[arg(long)]
        key_id: Option<String>,
    },
    /// Run a policy's test cases (body in, expected verdict/body out).
    Test {
        /// Test file(s) (YAML or JSON).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema of the policy manifest.
    Schema,
    /// Print the DataPolicy CustomResourceDefinition (generated from the manifest types).
    Crd {
        /// As JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Print the Istio objects for a DataPolicy (YAML), and as a comment the istio-proxy env
    /// its `secretRef` keys need.
    Render {
        /// The DataPolicy (YAML or JSON).
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// The filter image, pinned by digest: oci://REGISTRY/REPOSITORY@sha256:<64 hex>.
        /// Required: there is no default image.
        #[arg(long, value_name = "REF")]
        image: Option<String>,
        /// The mesh-wide DataPolicy (in the mesh root namespace) to merge into a namespace policy.
        #[arg(long, value_name = "FILE")]
        mesh_policy: Option<PathBuf>,
        /// Istio's root namespace: a DataPolicy there applies mesh-wide.
        #[arg(long, value_name = "NS", default_value = meshdlp::k8s::DEFAULT_MESH_ROOT_NAMESPACE)]
        mesh_root_namespace: String,
    },
    /// List every built-in class: its group, detectors, validators and an example.
    Classes {
        /// As JSON.
        #[arg(long, conflicts_with = "markdown")]
        json: bool,
        /// As the Markdown of docs/CLASSES.md.
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Args)]
struct Target {
    /// Policy file (YAML or JSON). Default: every built-in class, redact.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Request path, for route selection.
    #[arg(long, default_value = "/")]
    route_path: String,
    #[arg(long, default_value = "GET")]
    method: String,
    #[arg(long, default_value = "localhost")]
    host: String,
    #[arg(long, value_parser = ["request", "response"], default_value = "response")]
    direction: String,
    /// Caller scopes, space separated.
    #[arg(long, default_value = "")]
    scopes: String,
    /// Content type of the body (default: sniffed).
    #[arg(long)]
    content_type: Option<String>,
}

/// `println!`/`print!` that return the write error instead of panicking: `meshdlp scan | head`
/// closes the pipe, and the CLI then ends quietly (see `main`) rather than with a panic.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($t)*)?
    }};
}
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($t)*)?
    }};
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // The reader went away (`| head`): end quietly, with the status a process stopped by
        // SIGPIPE has in a shell (128 + 13), so `set -o pipefail` still sees that the command
        // did not finish (a `meshdlp test` that stopped before a failing case is not a pass).
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether `e` comes from writing to a closed pipe (serde_json wraps the io error as its own).
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Check { policy } => {
            if let Some(dp) = load_data_policy_if_any(&policy)? {
                let p = dp
                    .compile()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
                for w in p.warnings() {
                    eprintln!("warning: {}: {w}", policy.display());
                }
                outln!(
                    "ok: {} (DataPolicy {}, {} classes)",
                    policy.display(),
                    dp.id(),
                    p.classes().len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            // Checking needs no secrets: unset key variables are reported, not fatal.
            let m = load_manifest(&policy)?;
            for k in &m.keys {
                if let Some(var) = k.env_var().filter(|v| std::env::var(v).is_err()) {
                    eprintln!("warning: {}: key `{}`: environment variable `{var}` is not set here (checked with a placeholder)", policy.display(), k.id);
                }
            }
            let p = Policy::compile_with_env(&m, &placeholder_env)
                .map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
            for w in p.warnings() {
                eprintln!("warning: {}: {w}", policy.display());
            }
            outln!("ok: {} ({} classes)", policy.display(), p.classes().len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { policy } => {
            let m = load_manifest(&policy)?;
            Policy::compile_with_env(&m, &placeholder_env)
                .map_err(|e| anyhow::anyhow!("{}: {e}", policy.display()))?;
            outln!("{}", serde_json::to_string(&m)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Redact { target, explain } => {
            let policy = target_policy(&target)?;
            let body = read_stdin()?;
            let insp = inspect(&policy, &target, &body, target.content_type.as_deref());
            if explain {
                for f in &insp.findings {
                    eprintln!("{}", finding_line(f));
                }
                if let Some(e) = &insp.error {
                    eprintln!("error: {e}");
                }
                eprintln!("decision: {} (mode {:?})", insp.decision.name(), insp.mode);
            }
            let mut out = std::io::stdout().lock();
            match insp.effective() {
                Decision::Block(b) => {
                    out.write_all(&b.problem_json(None))?;
                    out.write_all(b"\n")?;
                    return Ok(ExitCode::from(3));
                }
                Decision::Rewrite(new) => out.write_all(new)?,
                Decision::Allow => out.write_all(&body)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan { target, jsonl } => {
            let policy = match &target.policy {
                Some(_) => target_policy(&target)?,
                None => Policy::from_json(br#"{"defaultRoute": {"request": {}, "response": {}}}"#)?,
            };
            if jsonl {
                scan_jsonl(&policy, &target)
            } else {
                let body = read_stdin()?;
                let insp = inspect(&policy, &target, &body, target.content_type.as_deref());
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&findings_json(&insp.findings))?
                );
                Ok(ExitCode::SUCCESS)
            }
        }
        Command::Detokenize { key_env, key_id } => {
            let secret = std::env::var(&key_env)
                .with_context(|| format!("environment variable {key_env} is not set"))?;
            let d = Detokenizer::new(secret.as_bytes(), key_id.as_deref());
            let input = String::from_utf8(read_stdin()?).context("input is not UTF-8")?;
            let (text, n, errors) = d.detokenize_text(&input);
            out!("{text}");
            eprintln!("detokenized {n} token(s)");
            if let Some(e) = errors.first() {
                eprintln!("error: {} token(s) not reversed: {e}", errors.len());
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { files } => {
            let (mut passed, mut failed) = (0, 0);
            for f in &files {
                let (p, fl) = run_test_file(f)?;
                passed += p;
                failed += fl;
            }
            outln!("{passed} passed, {failed} failed");
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Classes { json, markdown } => {
            let classes = meshdlp::catalog()?;
            let text = if json {
                serde_json::to_string_pretty(&classes)? + "\n"
            } else if markdown {
                classes_markdown(&classes)
            } else {
                classes_text(&classes)
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Schema => {
            let schema = schemars::schema_for!(Manifest);
            outln!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Render {
            file,
            image,
            mesh_policy,
            mesh_root_namespace,
        } => {
            let Some(image) = image else {
                bail!("--image is required: the filter's OCI image pinned by digest, oci://REGISTRY/REPOSITORY@sha256:<64 hex> (there is no default image: a placeholder that passes the API server's schema would deny every request of the selected workloads once istio-agent fails to fetch it)");
            };
            let image: meshdlp::k8s::ImageRef =
                image.parse().map_err(|e| anyhow::anyhow!("--image: {e}"))?;
            let dp = load_data_policy(&file)?;
            let mesh = match &mesh_policy {
                Some(p) => Some(load_data_policy(p)?),
                None => None,
            };
            let opts = meshdlp::k8s::RenderOptions {
                image,
                mesh_root_namespace,
            };
            let rendered = meshdlp::k8s::render(&dp, mesh.as_ref(), &opts)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let text = render_yaml(&dp, &rendered)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Crd { json } => {
            let crd = meshdlp::k8s::crd();
            let text = if json {
                serde_json::to_string_pretty(&crd)? + "\n"
            } else {
                format!("{CRD_HEADER}{}", serde_yaml_ng::to_string(&crd)?)
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// First lines of `meshdlp crd`'s YAML (k8s/crd/datapolicies.meshdlp.io.yaml).
const CRD_HEADER: &str = "# Generated by `meshdlp crd` from the engine's manifest types (src/k8s/crd.rs): do not edit.\n# Regenerate with `make crd`; a test fails when this file is stale.\n";

/// Reads a DataPolicy file (YAML or JSON, one document), errors located in the object.
fn load_data_policy(path: &Path) -> Result<meshdlp::k8s::DataPolicy> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let doc = meshdlp::k8s::parse_document(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if !meshdlp::k8s::is_data_policy(&doc) {
        bail!(
            "{}: not a DataPolicy (kind: DataPolicy, apiVersion: {})",
            path.display(),
            meshdlp::k8s::API_VERSION
        );
    }
    meshdlp::k8s::DataPolicy::from_value(&doc)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The DataPolicy in `path`, or `None` when the document is something else (a policy manifest:
/// its errors then come from the manifest parser, as before).
fn load_data_policy_if_any(path: &Path) -> Result<Option<meshdlp::k8s::DataPolicy>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let Ok(doc) = meshdlp::k8s::parse_document(&text) else {
        return Ok(None);
    };
    if !meshdlp::k8s::is_data_policy(&doc) {
        return Ok(None);
    }
    meshdlp::k8s::DataPolicy::from_value(&doc)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// `meshdlp render`'s output: a comment block (where the objects come from, the istio-proxy env
/// for `secretRef` keys), then the objects as YAML documents.
fn render_yaml(dp: &meshdlp::k8s::DataPolicy, r: &meshdlp::k8s::Rendered) -> Result<String> {
    let mut out = format!(
        "# Rendered by `meshdlp render` from DataPolicy {}{}: do not edit, render again.\n",
        dp.id(),
        r.merged_with
            .as_ref()
            .map(|m| format!(" merged with the mesh policy {m}"))
            .unwrap_or_default()
    );
    let removes_mesh_filter =
        !r.mesh_wide && dp.delivery == meshdlp::k8s::DeliveryMode::EnvoyFilter;
    if removes_mesh_filter && r.merged_with.is_none() {
        out += "# Not merged with a mesh policy (--mesh-policy): for the selected workloads it replaces the\n\
                # mesh-wide filter (meshdlp.mesh), if there is one, without its rules.\n";
    }
    if !r.secret_env.is_empty() {
        let namespaces = if r.mesh_wide {
            "every namespace with selected workloads (secretKeyRef is namespace-local)".to_string()
        } else {
            format!(
                "namespace `{}`",
                dp.namespace.as_deref().unwrap_or_default()
            )
        };
        out += &format!(
            "#\n# Keys: the istio-proxy container needs these variables (the filter reads them through\n\
             # host_env_keys). The Secrets must exist in {namespaces}.\n\
             # Add them to the pod template's istio-proxy container, or to an injection template\n\
             # (sidecarInjectorWebhook.templates + the pod annotation inject.istio.io/templates):\n#\n"
        );
        let env = serde_yaml_ng::to_string(&serde_json::json!({"env": r.istio_proxy_env()}))?;
        for line in env.lines() {
            out += &format!("#   {line}\n");
        }
    }
    let own_env: Vec<&String> = r
        .host_env_keys
        .iter()
        .filter(|k| !r.secret_env.iter().any(|s| &s.name == *k))
        .collect();
    if !own_env.is_empty() {
        let names: Vec<&str> = own_env.iter().map(|s| s.as_str()).collect();
        out += &format!(
            "#\n# Keys read from variables you set in the istio-proxy container yourself: {}\n",
            names.join(", ")
        );
    }
    // Names in the header come from the input file: a line break in one must not end the comment
    // (YAML 1.1 also breaks lines at NEL, LS and PS).
    let mut out: String = out
        .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
        .filter(|l| !l.is_empty())
        .map(|l| {
            if l.starts_with('#') {
                format!("{l}\n")
            } else {
                format!("# {l}\n")
            }
        })
        .collect();
    for obj in &r.objects {
        out += "---\n";
        out += &serde_yaml_ng::to_string(obj)?;
    }
    Ok(out)
}

/// The process environment, with a placeholder secret for unset variables (validation only).
fn placeholder_env(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .or_else(|| Some("placeholder-secret-for-validation".to_string()))
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut body = Vec::new();
    std::io::stdin()
        .read_to_end(&mut body)
        .context("reading stdin")?;
    Ok(body)
}

/// Reads a manifest (JSON by extension or leading brace, else YAML), with error locations.
fn load_manifest(path: &Path) -> Result<Manifest> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_manifest(&text, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn parse_manifest(text: &str, path: &Path) -> Result<Manifest, PolicyError> {
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    if is_json {
        meshdlp::parse_manifest_json(text.as_bytes())
    } else {
        // A key given twice is refused here as in JSON (YAML's own reader refuses it in a
        // `Value`'s mappings, not in the manifest's maps, where the last copy would win).
        meshdlp::deserialize_located::<_, serde_yaml_ng::Value>(
            serde_yaml_ng::Deserializer::from_str(text),
        )?;
        meshdlp::deserialize_located(serde_yaml_ng::Deserializer::from_str(text))
    }
}

fn compile_manifest(m: &Manifest, path: &Path) -> Result<Policy> {
    Policy::compile(m).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn load_policy(path: &Path) -> Result<Policy> {
    compile_manifest(&load_manifest(path)?, path)
}

fn target_policy(t: &Target) -> Result<Policy> {
    match &t.policy {
        Some(p) => load_policy(p),
        None => Ok(Policy::from_json(
            br#"{"defaultRoute": {"request": {}, "response": {}}}"#,
        )?),
    }
}

fn direction(s: &str) -> Direction {
    if s == "request" {
        Direction::Request
    } else {
        Direction::Response
    }
}

fn inspect(policy: &Policy, t: &Target, body: &[u8], content_type: Option<&str>) -> Inspection {
    let scopes: Vec<String> = t.scopes.split_whitespace().map(str::to_string).collect();
    let route = policy.route(&t.method, &t.route_path, &t.host);
    policy.inspect(&Exchange {
        route,
        direction: direction(&t.direction),
        content_type,
        scopes: &scopes,
        body,
    })
}

fn finding_line(f: &Finding) -> String {
    format!(
        "finding class={} path={} span={}..{} detector={} confidence={:.2} action={:?}{}",
        f.class,
        f.path.as_deref().unwrap_or("-"),
        f.start,
        f.end,
        f.detector,
        f.confidence,
        f.action,
        if f.out_of_scope { " out_of_scope" } else { "" }
    )
}

fn findings_json(findings: &[Finding]) -> Vec<serde_json::Value> {
    findings
        .iter()
        .map(|f| {
            serde_json::json!({
                "class": f.class.as_ref(),
                "start": f.start,
                "end": f.end,
                "path": f.path.as_deref(),
                "detector": f.detector.as_ref(),
                "confidence": (f64::from(f.confidence) * 1000.0).round() / 1000.0,
            })
        })
        .collect()
}

#[derive(Deserialize)]
struct ScanLine {
    id: serde_json::Value,
    body: String,
    #[serde(default)]
    content_type: Option<String>,
}

fn scan_jsonl(policy: &Policy, t: &Target) -> Result<ExitCode> {
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut bad_lines = 0;
    for (n, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        // One output line per input line, even for a line that is not a scan request: the
        // rest of the batch still runs.
        let row = match serde_json::from_str::<ScanLine>(&line) {
            Ok(input) => {
                let ct = input.content_type.as_deref().or(t.content_type.as_deref());
                let insp = inspect(policy, t, input.body.as_bytes(), ct);
                serde_json::json!({"id": input.id, "findings": findings_json(&insp.findings)})
            }
            Err(e) => {
                bad_lines += 1;
                serde_json::json!({"line": n + 1, "error": format!("not a scan request: {e}")})
            }
        };
        serde_json::to_writer(&mut out, &row)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    if bad_lines > 0 {
        eprintln!("error: {bad_lines} input line(s) were not scan requests");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// A policy test file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    /// Policy file, relative to the test file; or an inline manifest.
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    manifest: Option<Manifest>,
    cases: Vec<TestCase>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestCase {
    name: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    host: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default = "default_direction")]
    direction: String,
    #[serde(default)]
    content_type: Option<String>,
    /// The body as text, or `json` as structured data (serialised compactly).
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    json: Option<serde_json::Value>,
    expect: Expect,
}

fn default_path() -> String {
    "/".into()
}
fn default_method() -> String {
    "GET".into()
}
fn default_direction() -> String {
    "response".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expect {
    /// allow | rewrite | block (in monitor mode: what would happen).
    #[serde(default)]
    decision: Option<String>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    json: Option<serde_json::Value>,
    #[serde(default)]
    status: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
    /// Exactly these classes found (sorted, deduplicated).
    #[serde(default)]
    classes: Option<Vec<String>>,
}

fn run_test_file(file: &Path) -> Result<(usize, usize)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let tf: TestFile = if file.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(&text).with_context(|| format!("{}", file.display()))?
    } else {
        serde_yaml_ng::from_str(&text).with_context(|| format!("{}", file.display()))?
    };
    // Keys come from the environment when set, else a fixed placeholder (tests of hash and
    // tokenize outputs then hold on any machine).
    let compile = |m: &Manifest, path: &Path| {
        Policy::compile_with_env(m, &placeholder_env)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    };
    let policy = match (&tf.policy, &tf.manifest) {
        (Some(p), None) => {
            let path = file.parent().unwrap_or(Path::new(".")).join(p);
            compile(&load_manifest(&path)?, &path)?
        }
        (None, Some(m)) => compile(m, file)?,
        _ => bail!(
            "{}: give exactly one of `policy` (a file) or `manifest` (inline)",
            file.display()
        ),
    };
    let (mut passed, mut failed) = (0, 0);
    for case in &tf.cases {
        let problems = run_case(&policy, case);
        if problems.is_empty() {
            passed += 1;
            outln!("ok   {}: {}", file.display(), case.name);
        } else {
            failed += 1;
            outln!("FAIL {}: {}", file.display(), case.name);
            for p in problems {
                outln!("     {p}");
            }
        }
    }
    Ok((passed, failed))
}

fn run_case(policy: &Policy, c: &TestCase) -> Vec<String> {
    let body = match (&c.body, &c.json) {
        (Some(b), None) => b.clone().into_bytes(),
        (None, Some(j)) => serde_json::to_vec(j).unwrap_or_default(),
        (None, None) => Vec::new(),
        _ => return vec!["give one of `body` or `json`".into()],
    };
    let content_type = c
        .content_type
        .clone()
        .or_else(|| c.json.as_ref().map(|_| "application/json".to_string()));
    let route = policy.route(&c.method, &c.path, &c.host);
    let insp = policy.inspect(&Exchange {
        route,
        direction: direction(&c.direction),
        content_type: content_type.as_deref(),
        scopes: &c.scopes,
        body: &body,
    });
    let mut problems = Vec::new();
    let e = &c.expect;
    if let Some(d) = &e.decision {
        if d != insp.decision.name() {
            problems.push(format!(
                "decision: expected {d}, got {}",
                insp.decision.name()
            ));
        }
    }
    let out_body: Option<Vec<u8>> = match &insp.decision {
        Decision::Rewrite(b) => Some(b.clone()),
        Decision::Allow => Some(body.clone()),
        Decision::Block(_) => None,
    };
    if let Some(want) = &e.body {
        match &out_body {
            Some(got) if got == want.as_bytes() => {}
            Some(got) => problems.push(format!(
                "body: expected {want}\n          got {}",
                String::from_utf8_lossy(got)
            )),
            None => problems.push("body: expected a body, got a block".into()),
        }
    }
    if let Some(want) = &e.json {
        let got: Option<serde_json::Value> = out_body
            .as_ref()
            .and_then(|b| serde_json::from_slice(b).ok());
        if got.as_ref() != Some(want) {
            problems.push(format!(
                "json: expected {want}, got {}",
                got.map_or("(not JSON)".to_string(), |g| g.to_string())
            ));
        }
    }
    if let Decision::Block(b) = &insp.decision {
        if let Some(s) = e.status {
            if s != b.status {
                problems.push(format!("status: expected {s}, got {}", b.status));
            }
        }
        if let Some(r) = &e.reason {
            if r != b.reason.code() {
                problems.push(format!("reason: expected {r}, got {}", b.reason.code()));
            }
        }
    } else if e.status.is_some() || e.reason.is_some() {
        problems.push(format!("expected a block, got {}", insp.decision.name()));
    }
    if let Some(want) = &e.classes {
        let mut got: Vec<String> = insp.findings.iter().map(|f| f.class.to_string()).collect();
        got.sort();
        got.dedup();
        let mut want = want.clone();
        want.sort();
        want.dedup();
        if got != want {
            problems.push(format!("classes: expected {want:?}, got {got:?}"));
        }
    }
    problems
}

fn classes_text(classes: &[meshdlp::ClassInfo]) -> String {
    let mut out = String::new();
    for c in classes {
        out += &format!("{:<16} {:<28} {}\n", c.name, c.qualified, c.description);
        for d in &c.detectors {
            let validator = d.validator.as_deref().unwrap_or("-");
            out += &format!(
                "    {:<32} finds {:<13} validator {:<18} confidence {:.2}\n",
                d.id, d.finds, validator, d.confidence
            );
            if let Some(e) = &d.example {
                out += &format!("        example: {}\n", e.escape_debug());
            }
        }
    }
    let detectors: usize = classes.iter().map(|c| c.detectors.len()).sum();
    out += &format!("\n{} classes, {detectors} detectors\n", classes.len());
    out
}

/// docs/CLASSES.md (`make classes-doc`; tests/cli.rs fails when the file is stale).
fn classes_markdown(classes: &[meshdlp::ClassInfo]) -> String {
    let cell = |s: &str| s.replace('|', "\\|").replace('\n', "\\n");
    let mut out = String::from(
        "# Built-in classes\n\n\
         Generated by `meshdlp classes --markdown` (`make classes-doc`); a test fails when this \
         file is stale.\n\n\
         A policy names a class (`email`), its qualified name (`pii.email`), a group \
         (`national_id.us`: every class in it and in its subgroups) or a group with `.*` \
         (`secrets.*`), in `detect`, `scope.allow`, `scope.grants` and as `actions` keys (there \
         the most specific key wins). Custom classes are in the group `custom`.\n\n",
    );
    // Each group once, in the order it first appears (its classes are not all contiguous).
    let mut groups: Vec<&str> = Vec::new();
    for c in classes {
        if !groups.contains(&c.group.as_str()) {
            groups.push(&c.group);
        }
    }
    let detectors: usize = classes.iter().map(|c| c.detectors.len()).sum();
    out += &format!(
        "{} classes, {detectors} detectors, groups: {}.\n\n",
        classes.len(),
        groups
            .iter()
            .map(|g| format!("`{g}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out += "| class | qualified name | what |\n|---|---|---|\n";
    for c in classes {
        out += &format!(
            "| [`{}`](#{}) | `{}` | {} |\n",
            c.name,
            c.name,
            c.qualified,
            cell(&c.description)
        );
    }
    for c in classes {
        out += &format!(
            "\n## {}\n\n`{}`: {}\n\n",
            c.name, c.qualified, c.description
        );
        out += "| detector | finds | validator | confidence | key hints | example |\n|---|---|---|---|---|---|\n";
        for d in &c.detectors {
            let hints = if d.key_hints.is_empty() {
                "-".to_string()
            } else {
                let shown: Vec<String> = d
                    .key_hints
                    .iter()
                    .take(6)
                    .map(|h| format!("`{h}`"))
                    .collect();
                let more = d.key_hints.len().saturating_sub(6);
                if more > 0 {
                    format!("{} (+{more})", shown.join(", "))
                } else {
                    shown.join(", ")
                }
            };
            out += &format!(
                "| `{}` | {} | {} | {:.2} | {} | {} |\n",
                d.id,
                d.finds,
                d.validator
                    .as_deref()
                    .map_or("-".to_string(), |v| format!("`{v}`")),
                d.confidence,
                hints,
                d.example
                    .as_deref()
                    .map_or("-".to_string(), |e| format!("`{}`", cell(e))),
            );
        }
    }
    out
}
