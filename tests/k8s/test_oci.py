"""The filter as an OCI image (issue 8, M4): tests/k8s/oci.py writes the "compat" image Istio's Wasm
fetcher accepts, byte-for-byte reproducible; crane pushes it to the session's docker-registry on
127.0.0.1; crane, oras and tests/k8s/istio_fetch.py (what istio-agent does) pull it back by digest.
Pinning by manifest digest is what makes a moved tag harmless, and a single raw wasm layer is
refused the way Istio refuses it. `make oci` is run too, with the wasm already built."""

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest

import cluster as cluster_mod
import istio_fetch
import oci

# cargo's output, moved by CARGO_TARGET_DIR as the Makefile's builds are.
TARGET = os.path.join(cluster_mod.ROOT, os.environ.get("CARGO_TARGET_DIR") or "target")
WASM = os.path.join(TARGET, "wasm32-wasip1", "wasm", "meshdlp_filter.wasm")
RAW_LAYER = "application/vnd.wasm.content.layer.v1+wasm"


def run(argv, input=None, timeout=120, **kw):
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, **kw)
    assert proc.returncode == 0, "%s failed (%d):\n%s%s" % (argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def crane_push(layout, ref):
    """crane push; returns the digest crane reports (it prints REPO@sha256:...)."""
    return run([cluster_mod.CRANE, "push", "--insecure", str(layout), ref]).decode().strip().rsplit("@", 1)[1]


def with_custom_section(wasm, text):
    """Still a valid module: a custom section may come last."""
    name = text.encode()
    payload = bytes([len(name)]) + name
    return wasm + b"\0" + bytes([len(payload)]) + payload


@pytest.fixture(scope="module")
def wasm():
    """The built filter, read once: another build may rewrite target/ while the tests run."""
    if not os.path.exists(WASM):
        subprocess.run(["nice", "-n", "10", "make", "-C", cluster_mod.ROOT, "wasm"], check=True, timeout=1800)
    with open(WASM, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def image(cluster, wasm, tmp_path_factory):
    """The compat image of the built wasm pushed as REG/meshdlp-filter:test: (repo, digest)."""
    layout = tmp_path_factory.mktemp("oci") / "layout"
    digest = oci.layout(wasm, layout)
    repo = cluster.registry_host + "/meshdlp-filter"
    assert crane_push(layout, repo + ":test") == digest  # uploaded byte-for-byte
    return repo, digest


def blob(layout, digest):
    with open(os.path.join(layout, "blobs", "sha256", digest.split(":")[1]), "rb") as f:
        return f.read()


def test_layout_digest_is_deterministic(wasm, tmp_path):
    first = oci.layout(wasm, tmp_path / "a")
    assert oci.layout(wasm, tmp_path / "b") == first
    for dirpath, _, files in os.walk(tmp_path / "a"):
        for name in files:
            rel = os.path.relpath(os.path.join(dirpath, name), tmp_path / "a")
            with open(os.path.join(dirpath, name), "rb") as f, open(tmp_path / "b" / rel, "rb") as g:
                assert f.read() == g.read(), rel
    # the command line that `make oci` runs prints the same digest, also over an existing layout
    (tmp_path / "plugin.wasm").write_bytes(wasm)
    out = run([sys.executable, oci.__file__, "layout", str(tmp_path / "plugin.wasm"), str(tmp_path / "a")])
    assert out.decode().strip() == first
    assert oci.layout(with_custom_section(wasm, "other"), tmp_path / "c") != first


def test_layout_digest_of_a_fixed_module_never_changes(tmp_path):
    """Every pinned deployment depends on this: a change of the image format changes every digest.
    (Only deflate is not ours: a zlib that compresses 8 bytes differently would show here first.)"""
    assert oci.layout(b"\0asm\1\0\0\0", tmp_path) == \
        "sha256:8948542f16b202f34a7fbaf0c29d663e53821a81c39f2b2d4b47cb56e68f4709"


def test_layout_is_istio_compat_form(wasm, tmp_path):
    digest = oci.layout(wasm, tmp_path)
    with open(tmp_path / "oci-layout") as f:
        assert json.load(f) == {"imageLayoutVersion": "1.0.0"}
    with open(tmp_path / "index.json") as f:
        index = json.load(f)
    assert [m["digest"] for m in index["manifests"]] == [digest]  # one manifest, not an index of platforms
    raw = blob(tmp_path, digest)
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]
    layer = blob(tmp_path, manifest["layers"][0]["digest"])
    assert layer[4:8] == b"\0\0\0\0"  # gzip MTIME
    tar = gzip.decompress(layer)
    assert json.loads(blob(tmp_path, manifest["config"]["digest"])) == {
        "architecture": "wasm", "os": "wasip1",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}}
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
        members = t.getmembers()
        assert [(m.name, m.mode, m.mtime, m.uid, m.gid, m.uname, m.gname, m.isreg()) for m in members] == [
            ("plugin.wasm", 0o644, 0, 0, 0, "", "", True)]
        assert t.extractfile(members[0]).read() == wasm
    assert tar[257:265] == b"ustar\x0000"


def test_pull_back_by_digest_with_crane_and_oras(cluster, image, wasm):
    repo, digest = image
    export = subprocess.Popen([cluster_mod.CRANE, "export", "--insecure", "%s@%s" % (repo, digest), "-"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pulled = run(["tar", "-xO", "plugin.wasm"], stdin=export.stdout)
    export.stdout.close()
    assert export.wait(timeout=60) == 0, export.stderr.read()
    assert pulled == wasm
    manifest = run([cluster_mod.ORAS, "manifest", "fetch", "--plain-http", "%s@%s" % (repo, digest)])
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    assert run([cluster_mod.CRANE, "digest", "--insecure", repo + ":test"]).decode().strip() == digest


def test_istio_fetch_accepts_the_pinned_image(image, wasm, monkeypatch):
    repo, digest = image
    hexd = digest.split(":")[1]
    assert istio_fetch.fetch("oci://%s@%s" % (repo, digest)) == wasm  # pin from the URL
    assert istio_fetch.fetch("oci://%s@%s" % (repo, digest), hexd) == wasm  # + `sha256`, as rendered
    assert istio_fetch.fetch("oci://%s:test" % repo, hexd) == wasm  # a tag, checked against the pin
    # a plain-HTTP registry that is not local: TLS first, then plain text, as Istio falls back
    monkeypatch.setattr(istio_fetch, "LOCAL", re.compile("^$"))
    assert istio_fetch.fetch("oci://%s@%s" % (repo, digest)) == wasm


def test_wrong_pin_is_a_checksum_error(image):
    repo, digest = image
    url = "oci://%s@%s" % (repo, digest)
    with pytest.raises(istio_fetch.FetchError) as e:
        istio_fetch.fetch(url, "0" * 64)
    assert str(e.value) == "module downloaded from %s has checksum %s, which does not match: %s" % (
        url, digest.split(":")[1], "0" * 64)
    with pytest.raises(istio_fetch.FetchError) as e:  # a digest the registry does not have
        istio_fetch.fetch("oci://%s@sha256:%s" % (repo, "1" * 64))
    assert str(e.value).startswith("could not fetch Wasm OCI image: could not fetch manifest: GET ")
    assert "MANIFEST_UNKNOWN" in str(e.value)


def test_single_raw_wasm_layer_is_rejected_as_istio_does(cluster, wasm, tmp_path):
    layout = tmp_path / "raw"
    digest = oci.write_image(layout, b"{}", [(RAW_LAYER, wasm)], config_type="application/vnd.wasm.config.v0+json")
    repo = cluster.registry_host + "/meshdlp-raw"
    assert crane_push(layout, repo + ":raw") == digest
    with pytest.raises(istio_fetch.FetchError) as e:
        istio_fetch.fetch("oci://%s@%s" % (repo, digest))
    assert str(e.value) == (
        "could not fetch Wasm binary: the given image is in invalid format as an OCI image: 2 errors occurred:\n"
        "\t* could not parse as compat variant: invalid media type %s (expect application/vnd.oci.image.layer.v1.tar+gzip)\n"
        "\t* could not parse as oci variant: number of layers must be 2 but got 1\n\n" % RAW_LAYER)


def test_moved_tag_does_not_change_what_the_digest_pin_fetches(cluster, wasm, tmp_path):
    repo = cluster.registry_host + "/meshdlp-moving"
    old, new = wasm, with_custom_section(wasm, "moved")
    oci.layout(old, tmp_path / "old")
    oci.layout(new, tmp_path / "new")
    d_old = crane_push(tmp_path / "old", repo + ":v1")
    d_new = crane_push(tmp_path / "new", repo + ":v1")  # the same tag, other content
    assert d_old != d_new
    assert run([cluster_mod.CRANE, "digest", "--insecure", repo + ":v1"]).decode().strip() == d_new
    assert istio_fetch.fetch("oci://%s@%s" % (repo, d_old)) == old
    assert istio_fetch.fetch("oci://%s:v1" % repo) == new  # the tag alone follows the move
    with pytest.raises(istio_fetch.FetchError, match="has checksum %s, which does not match: %s"
                       % (d_new.split(":")[1], d_old.split(":")[1])):
        istio_fetch.fetch("oci://%s:v1" % repo, d_old.split(":")[1])  # tag + pin: refused, not swapped


def test_make_oci_writes_pushes_and_pins(cluster, wasm, tmp_path):
    out = tmp_path / "oci"
    make = ["make", "-s", "-C", cluster_mod.ROOT, "-o", "wasm", "oci", "OCI_DIR=%s" % out]  # -o: the wasm is built
    run(make, timeout=300)
    with open(out / "digest") as f:
        offline = f.read().strip()
    assert offline.startswith("sha256:") and not (out / "ref").exists()
    repo = cluster.registry_host + "/meshdlp-make"
    run([*make, "OCI_REPO=" + repo, "OCI_TAG=m4"], timeout=300)
    with open(out / "digest") as f:
        digest = f.read().strip()
    with open(out / "ref") as f:
        assert f.read().strip() == "%s@%s" % (repo, digest)
    assert run([cluster_mod.CRANE, "digest", "--insecure", repo + ":m4"]).decode().strip() == digest
    # what the agent would load rebuilds to the same digest: nothing outside the wasm enters it
    pulled = istio_fetch.fetch("oci://%s@%s" % (repo, digest))
    assert oci.layout(pulled, tmp_path / "again") == digest
