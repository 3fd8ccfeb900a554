"""What istio-agent does with `oci://` Wasm code, for the tests (stdlib only).

    python3 tests/k8s/istio_fetch.py oci://HOST/REPO@sha256:HEX [SHA256] > plugin.wasm

Follows Istio 1.30.3 pkg/wasm/cache.go (getOrFetch) and imagefetcher.go (PrepareFetch), with
go-containerregistry v0.21.7 (remote.Get) underneath. The texts of the errors the tests compare are
theirs (pin mismatch, no usable layer), so a test can say "Istio fails like this". Steps:
- the pin is the `sha256` field, else the `@sha256:` of the URL; neither = accept what comes;
- GET the manifest with the Accept list of remote.Get; fetched by digest, its sha256 must be that
  digest (go-containerregistry), then the manifest digest must equal the pin (Istio) - the pin is the
  MANIFEST digest, not the wasm's;
- an index is resolved to its linux/amd64 child (so a wasm index fails, and its digest is not the
  pin): not mirrored, it is an error here;
- Docker schema2 manifest: the last layer must be a Docker tar.gz layer; otherwise the "compat"
  variant (last layer `application/vnd.oci.image.layer.v1.tar+gzip`), then the "oci" variant (exactly
  2 layers, one `application/vnd.module.wasm.content.layer.v1+wasm`, raw);
- from a tar.gz, the first member whose base name is plugin.wasm; the result must start with the
  wasm magic.
Not mirrored: the module cache, pull secrets and keychains, the SSRF check of bearer realms.
Plain HTTP: go-containerregistry uses http for localhost:PORT, *.localhost, 127.0.0.1 and RFC 1918
hosts; for other hosts Istio retries in plain text when the TLS handshake meets an HTTP server.
"""

import gzip
import hashlib
import io
import json
import posixpath
import re
import ssl
import sys
import tarfile
import urllib.error
import urllib.request

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_WASM_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
           "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEXES = ("application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.index.v1+json")
ACCEPT = ",".join([*SCHEMA1, DOCKER_MANIFEST, "application/vnd.oci.image.manifest.v1+json", *INDEXES])
LOCAL = re.compile(r"^(localhost:\d+|.*\.localhost(:\d+)?|(127\.0\.0\.1|10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+"
                   r"|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+)(:\d+)?)$")  # name.Registry.Scheme() -> "http"


class FetchError(Exception):
    pass


class _Registry:
    def __init__(self, host, repo, timeout):
        self.host, self.repo, self.timeout = host, repo, timeout
        self.scheme = "http" if LOCAL.match(host) else "https"

    def get(self, kind, ident, accept=None):
        url = "%s://%s/v2/%s/%s/%s" % (self.scheme, self.host, self.repo, kind, ident)
        req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return r.read(), r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:  # go-containerregistry prints the registry's first error
            try:
                first = json.loads(e.read())["errors"][0]
                why = "%s: %s" % (first["code"], first["message"])
            except (ValueError, KeyError, IndexError, TypeError):
                why = "unexpected status code %d" % e.code
            raise FetchError("GET %s: %s" % (url, why))
        except urllib.error.URLError as e:  # "server gave HTTP response": Istio retries in plain text
            if self.scheme != "https" or not isinstance(e.reason, ssl.SSLError):
                raise
            self.scheme = "http"
            return self.get(kind, ident, accept)

    def blob(self, desc):
        data, _ = self.get("blobs", desc["digest"])
        if len(data) != desc["size"] or "sha256:" + hashlib.sha256(data).hexdigest() != desc["digest"]:
            raise FetchError("blob %s: size or digest does not match its descriptor" % desc["digest"])
        return data


def _plugin_from_targz(blob):
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)), mode="r:") as tar:
            for member in tar:
                if posixpath.basename(member.name) == "plugin.wasm":
                    return tar.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError) as e:
        raise FetchError("could not extract wasm binary: failed to parse layer as tar.gz: %s" % e)
    raise FetchError("could not extract wasm binary: plugin.wasm not found in the archive")


def _last_layer_targz(reg, layers, media_type):
    if not layers:
        raise FetchError("number of layers must be greater than zero")
    if layers[-1]["mediaType"] != media_type:
        raise FetchError("invalid media type %s (expect %s)" % (layers[-1]["mediaType"], media_type))
    return _plugin_from_targz(reg.blob(layers[-1]))


def _oci_variant(reg, layers):
    if len(layers) != 2:
        raise FetchError("number of layers must be 2 but got %d" % len(layers))
    for layer in layers:
        if layer["mediaType"] == OCI_WASM_LAYER:
            return reg.blob(layer)
    raise FetchError("could not find the layer of type %s" % OCI_WASM_LAYER)


def _extract(reg, manifest):
    layers = manifest.get("layers", [])
    if manifest.get("mediaType") == DOCKER_MANIFEST:
        try:
            return _last_layer_targz(reg, layers, DOCKER_LAYER)
        except FetchError as e:
            raise FetchError("could not extract Wasm file from the image as Docker container %s" % e)
    errors = []
    for variant, extract in (("compat", lambda: _last_layer_targz(reg, layers, OCI_LAYER)),
                             ("oci", lambda: _oci_variant(reg, layers))):
        try:
            return extract()
        except FetchError as e:
            errors.append("* could not parse as %s variant: %s" % (variant, e))
    raise FetchError("the given image is in invalid format as an OCI image: %d errors occurred:\n\t%s\n\n"
                     % (len(errors), "\n\t".join(errors)))


def fetch(url, sha256="", timeout=30):
    """The wasm bytes istio-agent would write for `code.remote.http_uri.uri: url` (oci://) with
    `sha256`; raises FetchError with the message the agent would log."""
    m = re.match(r"^oci://([^/]+)/(.+?)(?:@(sha256:[0-9a-f]{64})|:([\w][\w.-]{0,127}))?$", url)
    if not m:
        raise FetchError("not an oci:// image reference (only those are mirrored here): %s" % url)
    host, repo, digest, tag = m.groups()
    pin = sha256 or (digest or "")[len("sha256:"):]
    reg = _Registry(host, repo, timeout)
    try:
        raw, media_type = reg.get("manifests", digest or tag or "latest", ACCEPT)
        actual = "sha256:" + hashlib.sha256(raw).hexdigest()
        if digest and actual != digest:
            raise FetchError("manifest digest: %s does not match requested digest: %s for %s"
                             % (json.dumps(actual), json.dumps(digest), json.dumps(url[len("oci://"):])))
    except (OSError, FetchError) as e:
        raise FetchError("could not fetch Wasm OCI image: could not fetch manifest: %s" % e)
    if media_type in SCHEMA1 or media_type in INDEXES:
        raise FetchError("could not fetch Wasm OCI image: could not fetch image: %s is not an image manifest "
                         "(not mirrored: Istio would take the index's linux/amd64 child)" % media_type)
    if pin and actual[len("sha256:"):] != pin:
        raise FetchError("module downloaded from %s has checksum %s, which does not match: %s"
                         % (url, actual[len("sha256:"):], pin))
    try:
        try:
            manifest = json.loads(raw)
        except ValueError as e:
            raise FetchError("could not retrieve manifest: %s" % e)
        wasm = _extract(reg, manifest)
    except (OSError, FetchError) as e:
        raise FetchError("could not fetch Wasm binary: %s" % e)
    if len(wasm) < 8 or wasm[:4] != b"\0asm":
        raise FetchError("fetched Wasm binary from %s is invalid" % url)
    return wasm


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: istio_fetch.py oci://HOST/REPO@sha256:HEX [SHA256] > plugin.wasm")
    try:
        sys.stdout.buffer.write(fetch(*sys.argv[1:]))
    except FetchError as e:
        sys.exit("cannot fetch Wasm module %s: %s" % (sys.argv[1], e))
