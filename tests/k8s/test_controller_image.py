"""The controller as a container image (issue 8): `make controller-static` links meshdlp-controller
statically for x86_64-unknown-linux-musl, tests/k8s/oci.py packs it as an OCI image of one layer
(/meshdlp-controller; Entrypoint that file, User 65532:65532, no shell), and crane pushes it to the
session's docker-registry on 127.0.0.1.

- the same binary gives the same digest, byte for byte, from the module and from `make
  controller-image` (which also pushes and writes the ref the overlay's `images:` takes);
- the binary is a static x86_64 ELF (no interpreter, no shared library) and holds no path of the
  machine that built it;
- crane and oras pull it back by digest; what crane exports, run the way a container runtime
  would (the image's files alone as the root filesystem, chroot; the config's Entrypoint and
  User), answers --version and --help as a non-root process;
- and, still alone in that root, it reconciles a DataPolicy on the real API server over TLS
  (rustls + ring built for musl): the EnvoyFilter appears, the finalizer removes it again.

Its own target, `make test-controller-image`, not part of `make test-k8s`: the release build for
the musl target takes 9-13 minutes cold on 2 cores (k8s/README.md). Without
MESHDLP_CONTROLLER_IMAGE_TESTS=1 (the target sets it) the module is skipped.

What only a cluster shows: a kubelet pulling it (containerd's unpack, the pod's securityContext
against the image's User, the read-only root filesystem) and the in-cluster configuration (the
service account token and CA); see docs/ISTIO.md."""

import base64
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request

import pytest

import cluster as cluster_mod
import oci

if os.environ.get("MESHDLP_CONTROLLER_IMAGE_TESTS") != "1":
    pytest.skip("the controller image has its own target: make test-controller-image", allow_module_level=True)

ROOT = cluster_mod.ROOT
CRD_FILE = os.path.join(ROOT, "k8s", "crd", "datapolicies.meshdlp.io.yaml")
MUSL = "x86_64-unknown-linux-musl"
NS = "controller-image-test"  # no other module uses it
FILTER_IMAGE = "oci://registry.example/meshdlp/meshdlp-filter@sha256:" + "4f1d" * 16
WAIT = 60
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"  # the commands run with an empty environment


def run(argv, input=None, timeout=120, **kw):
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, **kw)
    assert proc.returncode == 0, "%s failed (%d):\n%s%s" % (argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def crate_version():
    with open(os.path.join(ROOT, "k8s", "controller", "Cargo.toml")) as f:
        return next(l.split('"')[1] for l in f if l.startswith("version = "))


@pytest.fixture(scope="module")
def binary_path():
    """`make controller-static` (the musl release build, in CARGO_TARGET_DIR as the Makefile
    leaves it): seconds when it is up to date, minutes cold."""
    t0 = time.monotonic()
    run(["nice", "-n", "10", "make", "-s", "-C", ROOT, "controller-static"], timeout=3600)
    target = os.environ.get("CARGO_TARGET_DIR") or "target"
    path = os.path.join(target if os.path.isabs(target) else os.path.join(ROOT, target), MUSL, "release",
                        "meshdlp-controller")
    assert os.access(path, os.X_OK), path
    print("controller-static %.1fs, %d bytes" % (time.monotonic() - t0, os.path.getsize(path)))
    return path


@pytest.fixture(scope="module")
def binary(binary_path):
    """Read once: another build may rewrite the target directory while the tests run."""
    with open(binary_path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def layout(binary, tmp_path_factory):
    """The image's layout, written once: (digest, path)."""
    path = tmp_path_factory.mktemp("controller") / "layout"
    return oci.controller(binary, path, crate_version()), path


@pytest.fixture(scope="module")
def image(cluster, layout):
    """The image pushed as REG/meshdlp-controller:test: (repo, digest)."""
    digest, path = layout
    repo = cluster.registry_host + "/meshdlp-controller"
    pushed = run([cluster_mod.CRANE, "push", "--insecure", str(path), repo + ":test"]).decode().strip()
    assert pushed.rsplit("@", 1)[1] == digest  # uploaded byte-for-byte
    return repo, digest


@pytest.fixture(scope="module")
def rootfs(image, tmp_path_factory):
    """What a container runtime unpacks: the pulled image's files, nothing else."""
    repo, digest = image
    root = tmp_path_factory.mktemp("rootfs")
    export = subprocess.Popen([cluster_mod.CRANE, "export", "--insecure", "%s@%s" % (repo, digest), "-"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run(["tar", "-x", "-C", str(root)], stdin=export.stdout)
    export.stdout.close()
    assert export.wait(timeout=60) == 0, export.stderr.read()
    root.chmod(0o755)  # as a runtime's rootfs: the image user must be able to walk it
    return root


@pytest.fixture(scope="module")
def pulled_config(image):
    repo, digest = image
    return json.loads(run([cluster_mod.CRANE, "config", "--insecure", "%s@%s" % (repo, digest)]))


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def same_tree(a, b):
    for dirpath, _, files in os.walk(a):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), a)
            with open(os.path.join(dirpath, name), "rb") as f, open(os.path.join(b, rel), "rb") as g:
                assert f.read() == g.read(), rel


# ------------------------------------------------------------------ the layout, offline

def test_digest_is_reproducible(binary, binary_path, layout, tmp_path):
    first, path = layout
    assert oci.controller(binary, tmp_path / "b", crate_version()) == first
    same_tree(path, tmp_path / "b")
    # the command line `make controller-image` runs prints the same, also over an existing layout
    out = run([sys.executable, oci.__file__, "controller", binary_path, str(tmp_path / "b"), crate_version()])
    assert out.decode().strip() == first
    same_tree(path, tmp_path / "b")
    # the version label and every byte of the binary are in the digest
    small = oci.controller(b"\x7fELF", tmp_path / "c", "1.0.0")
    assert oci.controller(b"\x7fELF", tmp_path / "d", "1.0.1") != small
    assert oci.controller(b"\x7fELF\0", tmp_path / "e", "1.0.0") != small


def test_layout_digest_of_a_fixed_binary_never_changes(tmp_path):
    """A change of the image format changes every pinned digest: on purpose only."""
    assert oci.controller(b"\x7fELF", tmp_path, "0.0.0") == \
        "sha256:8b4bd74ab1a5c642fe31859d9517dbadffea8f08ca4bb2a507c7d2c46ce7d8c1"


def test_layout_is_one_layer_holding_one_executable(binary, layout):
    digest, tmp_path = layout
    with open(tmp_path / "index.json") as f:
        assert [m["digest"] for m in json.load(f)["manifests"]] == [digest]  # one manifest, no index
    manifest = json.loads(blob(tmp_path, digest))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    tar = gzip.decompress(blob(tmp_path, manifest["layers"][0]["digest"]))
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
        members = t.getmembers()
        # no shell, no libc, no /etc: the one file
        assert [(m.name, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname, m.isreg()) for m in members] == [
            ("meshdlp-controller", 0o755, 0, 0, 0, "", "", True)]
        assert t.extractfile(members[0]).read() == binary
    config = json.loads(blob(tmp_path, manifest["config"]["digest"]))
    assert config == {
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/meshdlp-controller"], "User": "65532:65532", "WorkingDir": "/",
                   "Labels": {"org.opencontainers.image.title": "meshdlp-controller",
                              "org.opencontainers.image.version": crate_version()}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}


def elf_facts(data):
    """(machine, PT_INTERP present, DT_NEEDED count) of a little-endian ELF64 file."""
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a little-endian ELF64"
    e_machine, = struct.unpack_from("<H", data, 18)
    e_phoff, = struct.unpack_from("<Q", data, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 54)
    interp, needed = False, 0
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, e_phoff + i * e_phentsize)
        if p_type == 3:  # PT_INTERP: the dynamic loader a dynamic executable asks for
            interp = True
        elif p_type == 2:  # PT_DYNAMIC (a static-pie has one): count DT_NEEDED entries
            for off in range(p_offset, p_offset + p_filesz, 16):
                tag, _ = struct.unpack_from("<qQ", data, off)
                needed += tag == 1
                if tag == 0:
                    break
    return e_machine, interp, needed


def test_binary_is_static_and_holds_no_build_paths(binary):
    machine, interp, needed = elf_facts(binary)
    assert machine == 62, machine  # EM_X86_64, as the config's architecture says
    assert not interp and needed == 0, "dynamically linked: interpreter %s, %d DT_NEEDED" % (interp, needed)
    # --remap-path-prefix: panic locations name /meshdlp/... and /cargo/..., not this machine's paths
    for path in (os.path.realpath(ROOT), os.path.realpath(os.path.expanduser("~/.cargo"))):
        assert path.encode() + b"/" not in binary, path
    assert elf_facts(open(sys.executable, "rb").read())[1]  # the check itself sees a dynamic one


# ------------------------------------------------------------------ through the registry

def test_pull_back_by_digest_with_crane_and_oras(image, binary, rootfs, pulled_config):
    repo, digest = image
    assert sorted(os.listdir(rootfs)) == ["meshdlp-controller"]
    assert (rootfs / "meshdlp-controller").read_bytes() == binary
    manifest = run([cluster_mod.ORAS, "manifest", "fetch", "--plain-http", "%s@%s" % (repo, digest)])
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    assert run([cluster_mod.CRANE, "digest", "--insecure", repo + ":test"]).decode().strip() == digest
    assert pulled_config["config"]["Entrypoint"] == ["/meshdlp-controller"]
    assert pulled_config["config"]["User"] == "65532:65532"
    assert "Cmd" not in pulled_config["config"] and "Env" not in pulled_config["config"]


def in_image(rootfs, config, args):
    """argv running the image's Entrypoint with `args` as a runtime would: the image's files as
    the root, as the image's User."""
    user = config["config"]["User"]
    uid, gid = (int(x) for x in user.split(":"))
    assert uid != 0 and gid != 0, user
    return [CHROOT, "--userspec=%d:%d" % (uid, gid), "--groups=", str(rootfs), *config["config"]["Entrypoint"], *args]


def test_pulled_image_runs_alone_as_non_root(rootfs, pulled_config):
    out = run(in_image(rootfs, pulled_config, ["--version"]), env={}).decode()
    assert out == "meshdlp-controller %s\n" % crate_version(), out
    out = run(in_image(rootfs, pulled_config, ["--help"]), env={}).decode()
    for flag in ("--image", "--kubeconfig", "--mesh-root-namespace", "--leader-election", "--events",
                 "--health-addr"):
        assert flag in out, (flag, out)


def test_make_controller_image_writes_pushes_and_pins(cluster, image, tmp_path):
    """`make controller-image` over the same build: the same digest as the module, then pushed."""
    _, digest = image
    out = tmp_path / "img"
    make = ["nice", "-n", "10", "make", "-s", "-C", ROOT, "controller-image", "CONTROLLER_IMAGE_DIR=%s" % out]
    run(make, timeout=1800)
    assert (out / "digest").read_text().strip() == digest and not (out / "ref").exists()
    repo = cluster.registry_host + "/meshdlp-controller-make"
    run([*make, "CONTROLLER_REPO=" + repo, "CONTROLLER_TAG=t1"], timeout=1800)
    assert (out / "digest").read_text().strip() == digest
    assert (out / "ref").read_text().strip() == "%s@%s" % (repo, digest)
    assert run([cluster_mod.CRANE, "digest", "--insecure", repo + ":t1"]).decode().strip() == digest


# ------------------------------------------------------------------ the image's binary at work

def kubeconfig_inline(cluster):
    """The session kubeconfig with the certificates inline: the chroot sees no other file."""
    with open(cluster.kubeconfig) as f:
        kc = json.load(f)

    def inline(d, key):
        with open(d.pop(key), "rb") as f:
            d[key + "-data"] = base64.b64encode(f.read()).decode()
    inline(kc["clusters"][0]["cluster"], "certificate-authority")
    inline(kc["users"][0]["user"], "client-certificate")
    inline(kc["users"][0]["user"], "client-key")
    return json.dumps(kc)


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def wait_for(what, fn, proc, log):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        assert proc.poll() is None, "controller exited (%s):\n%s" % (proc.returncode, log.read_text()[-4000:])
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError("%s: not after %ss\n%s" % (what, WAIT, log.read_text()[-4000:]))


def test_image_binary_reconciles_on_the_api_server(cluster, istio_crds, image, rootfs, pulled_config, tmp_path):
    cluster.kubectl(["apply", "--server-side", "--field-manager", "meshdlp-test", "-f", CRD_FILE], check=True)
    cluster.wait_established(["datapolicies.meshdlp.io"])
    root = tmp_path / "root"  # a copy: the kubeconfig (a client key) stays out of the shared rootfs
    shutil.copytree(rootfs, root)
    root.chmod(0o755)
    (root / "kubeconfig").write_text(kubeconfig_inline(cluster))
    (root / "kubeconfig").chmod(0o644)
    port = cluster_mod.free_port()
    log = tmp_path / "controller.log"
    argv = in_image(root, pulled_config, ["--kubeconfig=/kubeconfig", "--image=" + FILTER_IMAGE,
                                          "--leader-election=false", "--events=false",
                                          "--health-addr=127.0.0.1:%d" % port])
    with open(log, "w") as out:
        proc = cluster_mod.track(subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                  stdin=subprocess.DEVNULL, env={}, start_new_session=True))
    dp = {"apiVersion": "meshdlp.io/v1alpha1", "kind": "DataPolicy",
          "metadata": {"name": "image", "namespace": NS},
          "spec": {"selector": {"matchLabels": {"app": "image"}},
                   "defaultRoute": {"response": {"actions": {"email": "redact"}}}}}
    try:
        wait_for("/readyz", lambda: get(port, "/readyz") == 200, proc, log)
        with open("/proc/%d/status" % proc.pid) as f:  # chroot exec'd the controller in place
            ids = {l.split(":")[0]: l.split()[1:] for l in f if l.startswith(("Uid:", "Gid:"))}
        assert ids == {"Uid": ["65532"] * 4, "Gid": ["65532"] * 4}, ids
        cluster.apply(dp)

        def programmed():
            r = cluster.kubectl(["get", "envoyfilter", "meshdlp-image", "-n", NS, "-o", "json"])
            return json.loads(r.stdout) if r.returncode == 0 else None
        ef = wait_for("EnvoyFilter written", programmed, proc, log)
        assert ef["metadata"]["ownerReferences"][0]["name"] == "image"
        cluster.kubectl(["delete", "datapolicy", "image", "-n", NS, "--wait=false"], check=True)

        def gone():
            r = cluster.kubectl(["get", "envoyfilter,datapolicy", "-n", NS, "-o", "name"], check=True)
            return r.stdout.strip() == ""
        wait_for("finalizer ran", gone, proc, log)  # the test server has no garbage collector
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        # nothing left behind that a later module could trip on
        cluster.kubectl(["patch", "datapolicy", "image", "-n", NS, "--type=merge", "-p",
                         '{"metadata":{"finalizers":null}}'])
        cluster.kubectl(["delete", "envoyfilter,datapolicy", "--all", "-n", NS, "--ignore-not-found"])
