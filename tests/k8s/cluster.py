"""A real CRD API server on 127.0.0.1 for tests/k8s: etcd, k8s/testserver (apiextensions-apiserver
behind our own main()), a docker-registry, and a kubeconfig for the project-local kubectl.

Everything comes from `make k8s-tools` (.tools/k8s); state lives under .work/k8s and is made anew on
each start (PKI, etcd data, registry storage). Every wait is bounded, every process is stopped by
its pid, also when the start fails half way, and also when the test process itself is told to stop:
SIGTERM or SIGHUP ends every process started here (and those the tests registered with `track`)
before the test process dies of the signal, and the servers get SIGKILL from the kernel if it
dies without a chance to (PR_SET_PDEATHSIG). What the server does not have (no Namespaces, RBAC,
garbage collector, admission webhooks, Pods...) is in k8s/testserver/main.go; Leases and Events
exist only as the shim CRDs applied here."""

import ctypes
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
import weakref

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOOLS = os.path.join(ROOT, ".tools", "k8s")
BIN = os.path.join(TOOLS, "root", "usr", "bin")
ETCD = os.path.join(BIN, "etcd")
KUBECTL = os.path.join(BIN, "kubectl")  # Debian's kubectl 1.36, never /usr/bin/kubectl
REGISTRY = os.path.join(BIN, "docker-registry")
CRANE = os.path.join(BIN, "crane")
ORAS = os.path.join(BIN, "oras")
PROMTOOL = os.path.join(BIN, "promtool")
TESTSERVER = os.path.join(TOOLS, "bin", "testserver")
# One state directory per run: two runs in one checkout (e.g. two shells) set MESHDLP_K8S_WORK apart.
WORK = os.environ.get("MESHDLP_K8S_WORK") or os.path.join(ROOT, ".work", "k8s")
ISTIO_CRDS = os.path.join(ROOT, "..", "shared", "istio", "crd-all.gen.yaml")

# Leases and Events are not served by the test server. A CRD in a protected (*.k8s.io) group is
# accepted with this annotation (state APIApprovalBypassed), so leader election and kube-runtime's
# event Recorder (events.k8s.io/v1) have something real to talk to.
APPROVAL = {"api-approved.kubernetes.io": "unapproved, meshdlp test shim"}


def _shim_crd(group, plural, kind, root_fields):
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if not root_fields:  # Lease: everything under spec
        schema = {"type": "object", "properties": {
            "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": plural + "." + group, "annotations": APPROVAL},
        "spec": {
            "group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": kind.lower(), "kind": kind, "listKind": kind + "List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


# Event (events.k8s.io/v1) keeps its fields at the top level (eventTime, regarding, note...).
SHIM_CRDS = [
    _shim_crd("coordination.k8s.io", "leases", "Lease", root_fields=False),
    _shim_crd("events.k8s.io", "events", "Event", root_fields=True),
]


# Processes to end when the test process gets SIGTERM/SIGHUP: every server of a Cluster, and what
# tests register (controllers, Envoy). Weak: a finished test's Popen is not kept alive.
_TRACKED = weakref.WeakSet()
_CLUSTERS = weakref.WeakSet()
_HANDLED = (signal.SIGTERM, signal.SIGHUP)
_previous = {}


def track(proc):
    """Ends `proc` (a Popen, best started with start_new_session=True) if the test process is
    stopped by SIGTERM/SIGHUP; installs the handler on first use. Returns proc."""
    _install_handler()
    _TRACKED.add(proc)
    return proc


def _end(procs, grace=5.0):
    """SIGTERM to every live one, SIGKILL to what still runs after `grace` seconds; by pid."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        try:
            p.terminate()
        except OSError:
            pass
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)


def _on_signal(signum, frame):
    """Stop everything we started, then die of the signal as before (exit status 128+signum)."""
    for s in _HANDLED:  # a second signal while stopping: die at once
        signal.signal(s, _previous.get(s, signal.SIG_DFL))
    try:
        _end([p for p in list(_TRACKED) if not any(p in c.procs.values() for c in list(_CLUSTERS))])
        for c in list(_CLUSTERS):
            try:
                c.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                pass
    finally:
        handler = _previous.get(signum, signal.SIG_DFL)
        if callable(handler) and handler is not _on_signal:
            handler(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


def _install_handler():
    """Only the main thread may set handlers (pytest runs tests there)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for s in _HANDLED:
        current = signal.getsignal(s)
        if current is not _on_signal:
            _previous[s] = current if current not in (None, signal.SIG_IGN) else signal.SIG_DFL
            signal.signal(s, _on_signal)


def _die_with_parent():
    """In the child before exec: the kernel sends SIGKILL when the test process dies (even by
    SIGKILL, when no handler runs). Linux only; elsewhere nothing."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(pki):
    """CA, server cert (SAN IP:127.0.0.1) and an X.509 v3 client cert CN=meshdlp-test,
    O=system:masters with extendedKeyUsage=clientAuth (rustls rejects v1 certificates)."""
    os.makedirs(pki, exist_ok=True)
    p = lambda name: os.path.join(pki, name)  # noqa: E731
    with open(p("ca.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\n")
    with open(p("server.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "authorityKeyIdentifier=keyid\n")
    with open(p("client.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\nauthorityKeyIdentifier=keyid\n")
    for name in ("ca", "server", "client"):
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", p(name + ".key"))
    _openssl("req", "-new", "-key", p("ca.key"), "-subj", "/CN=meshdlp-test-ca", "-out", p("ca.csr"))
    _openssl("x509", "-req", "-in", p("ca.csr"), "-key", p("ca.key"), "-days", "30", "-sha256",
             "-extfile", p("ca.ext"), "-out", p("ca.crt"))
    for name, subj in (("server", "/CN=meshdlp-testserver"), ("client", "/O=system:masters/CN=meshdlp-test")):
        _openssl("req", "-new", "-key", p(name + ".key"), "-subj", subj, "-out", p(name + ".csr"))
        _openssl("x509", "-req", "-in", p(name + ".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
                 "-CAcreateserial", "-days", "30", "-sha256", "-extfile", p(name + ".ext"), "-out", p(name + ".crt"))


class Cluster:
    """etcd + testserver + docker-registry. `start()` returns self or raises (after stopping what
    it started); `stop()` is idempotent."""

    def __init__(self, work=WORK):
        self.work = work
        self.pki = os.path.join(work, "pki")
        self.kubeconfig = os.path.join(work, "kubeconfig")
        self.procs = {}  # name -> Popen
        self.logs = {}
        self.etcd_port = self.etcd_peer_port = self.api_port = self.registry_port = None

    # ------------------------------------------------------------ lifecycle
    def start(self):
        for path in (ETCD, KUBECTL, REGISTRY, TESTSERVER):
            if not os.access(path, os.X_OK):
                raise RuntimeError("%s missing: run `make k8s-tools`" % path)
        self._kill_leftovers()
        _install_handler()
        _CLUSTERS.add(self)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        try:
            t0 = time.monotonic()
            make_pki(self.pki)
            self.timings = {"pki": time.monotonic() - t0}
            self._start_etcd()
            self._start_testserver()
            self._start_registry()
            self._write_kubeconfig()
            t0 = time.monotonic()
            self.apply_shims()
            self.timings["shims"] = time.monotonic() - t0
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Ends every process it started, even when one of them will not die (the first error is
        raised after all were tried)."""
        error = None
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            try:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=5)
            except (OSError, subprocess.SubprocessError) as e:
                error = error or e
        for f in self.logs.values():
            f.close()
        self.logs = {}
        pids = os.path.join(self.work, "pids.json")
        if error is None and os.path.exists(pids):
            os.remove(pids)  # kept on error, so the next start() ends what is left
        if error is not None:
            raise error

    def _kill_leftovers(self):
        """A run that died without stop() leaves pids.json: end those processes, by pid, only if
        they still run one of our binaries."""
        path = os.path.join(self.work, "pids.json")
        try:
            with open(path) as f:
                pids = json.load(f)
        except (OSError, ValueError):
            return
        for exe, pid in pids.items():
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv0 = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if argv0 == exe:
                os.kill(pid, signal.SIGKILL)

    def _spawn(self, name, argv, env=None):
        log = open(os.path.join(self.work, name + ".log"), "w")
        self.logs[name] = log
        self.procs[name] = track(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                  cwd=self.work, env=env, start_new_session=True,
                                                  preexec_fn=_die_with_parent))
        with open(os.path.join(self.work, "pids.json"), "w") as f:
            json.dump({p.args[0]: p.pid for p in self.procs.values()}, f)

    def _wait(self, name, probe, timeout):
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError("%s exited (%s):\n%s" % (name, self.procs[name].returncode, self.log_tail(name)))
            try:
                if probe():
                    self.timings[name] = time.monotonic() - t0
                    return
            except (OSError, ValueError) as e:
                last = e
            time.sleep(0.05)
        raise RuntimeError("%s not ready after %ss (%s):\n%s" % (name, timeout, last, self.log_tail(name)))

    def log_tail(self, name, n=4000):
        try:
            with open(os.path.join(self.work, name + ".log"), errors="replace") as f:
                return f.read()[-n:]
        except OSError:
            return ""

    def _start_etcd(self):
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        client = "http://127.0.0.1:%d" % self.etcd_port
        peer = "http://127.0.0.1:%d" % self.etcd_peer_port
        self._spawn("etcd", [
            ETCD, "--name", "meshdlp-test", "--data-dir", os.path.join(self.work, "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "meshdlp-test=" + peer, "--unsafe-no-fsync", "--log-level", "warn"])

        def healthy():
            with urllib.request.urlopen(client + "/health", timeout=1) as r:
                return json.load(r).get("health") == "true"
        self._wait("etcd", healthy, 20)

    def _start_testserver(self):
        self.api_port = free_port()
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        self._spawn("testserver", [
            TESTSERVER, "--etcd-servers", "http://127.0.0.1:%d" % self.etcd_port,
            "--bind-address", "127.0.0.1", "--secure-port", str(self.api_port), "--cert-dir", self.pki,
            "--tls-cert-file", p("server.crt"), "--tls-private-key-file", p("server.key"),
            "--client-ca-file", p("ca.crt")])
        ctx = ssl.create_default_context(cafile=p("ca.crt"))

        def ready():  # /readyz is open to anonymous requests; it waits for the CRD informer too
            with urllib.request.urlopen(self.server + "/readyz", timeout=2, context=ctx) as r:
                return r.status == 200
        self._wait("testserver", ready, 60)

    def _start_registry(self):
        self.registry_port = free_port()
        cfg = os.path.join(self.work, "registry.yml")
        with open(cfg, "w") as f:  # no auth section (the packaged /etc config has htpasswd)
            f.write(json.dumps({
                "version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": os.path.join(self.work, "registry")},
                            "delete": {"enabled": True}},
                "http": {"addr": "127.0.0.1:%d" % self.registry_port, "secret": "meshdlp-test-only"},
            }))
        self._spawn("registry", [REGISTRY, "serve", cfg])

        def ready():
            with urllib.request.urlopen(self.registry + "/v2/", timeout=1) as r:
                return r.status == 200
        self._wait("registry", ready, 15)

    def _write_kubeconfig(self):
        p = lambda name: os.path.join(self.pki, name)  # noqa: E731
        with open(self.kubeconfig, "w") as f:  # JSON is YAML
            json.dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "meshdlp-test", "preferences": {},
                "clusters": [{"name": "meshdlp-test", "cluster": {"server": self.server, "certificate-authority": p("ca.crt")}}],
                "users": [{"name": "meshdlp-test", "user": {"client-certificate": p("client.crt"), "client-key": p("client.key")}}],
                "contexts": [{"name": "meshdlp-test", "context": {"cluster": "meshdlp-test", "user": "meshdlp-test",
                                                                  "namespace": "default"}}],
            }, f, indent=1)

    # ------------------------------------------------------------ helpers
    @property
    def server(self):
        return "https://127.0.0.1:%d" % self.api_port

    @property
    def registry(self):
        return "http://127.0.0.1:%d" % self.registry_port

    @property
    def registry_host(self):
        return "127.0.0.1:%d" % self.registry_port

    def env(self):
        return dict(os.environ, KUBECONFIG=self.kubeconfig, KUBECACHEDIR=os.path.join(self.work, "kubecache"))

    def kubectl(self, args, input=None, check=False, timeout=120):
        """The project-local kubectl with this cluster's kubeconfig; returns the CompletedProcess
        (text). check=True raises with kubectl's stderr."""
        proc = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", os.path.join(self.work, "kubecache"),
                               *args], input=input, capture_output=True, text=True, timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            raise RuntimeError("kubectl %s failed (%d):\n%s%s" % (" ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def kubectl_json(self, args, input=None):
        return json.loads(self.kubectl([*args, "-o", "json"], input=input, check=True).stdout)

    def apply(self, objs, server_side=True):
        """Apply dicts (or a list of them) as JSON; returns the CompletedProcess (check=True)."""
        if isinstance(objs, dict):
            objs = [objs]
        doc = "\n---\n".join(json.dumps(o) for o in objs)  # JSON documents in a YAML stream
        args = ["apply", "-f", "-"] + (["--server-side", "--field-manager", "meshdlp-test"] if server_side else [])
        return self.kubectl(args, input=doc, check=True)

    def wait_established(self, names, timeout=60):
        """kubectl wait fails at once ("accessor error: <nil>") on a CRD the server has not
        given conditions yet (seen when a module applies the CRD first): asked again then."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.kubectl(["wait", "--for", "condition=Established", "--timeout", "%ds" % timeout,
                                 *["crd/" + n for n in names]], timeout=timeout + 30)
            if proc.returncode == 0:
                return proc
            if "accessor error" not in proc.stderr or time.monotonic() > deadline:
                raise RuntimeError("kubectl wait for %s failed (%d):\n%s%s"
                                   % (names, proc.returncode, proc.stdout, proc.stderr))
            time.sleep(0.2)

    def apply_shims(self):
        self.apply(SHIM_CRDS)
        self.wait_established([c["metadata"]["name"] for c in SHIM_CRDS])

    def apply_istio_crds(self):
        """Istio's CRDs, server-side (client-side apply's last-applied annotation would be too big
        for destinationrules). Returns the CRD names."""
        out = self.kubectl(["apply", "--server-side", "--field-manager", "meshdlp-test", "-f", ISTIO_CRDS, "-o", "name"],
                           check=True, timeout=180)
        names = [line.split("/", 1)[1] for line in out.stdout.split() if line.startswith("customresourcedefinition")]
        self.wait_established(names)
        return names

    def rss_kib(self):
        """Resident set size of each process, KiB (from /proc)."""
        out = {}
        for name, proc in self.procs.items():
            with open("/proc/%d/status" % proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1])
        return out


if __name__ == "__main__":  # python tests/k8s/cluster.py: start, print how to reach it, wait for ^C
    c = Cluster().start()
    try:
        print("KUBECONFIG=%s  registry %s  timings %s  rss %s" % (c.kubeconfig, c.registry, c.timings, c.rss_kib()),
              flush=True)
        signal.sigwait([signal.SIGINT, signal.SIGTERM])
    finally:
        c.stop()
