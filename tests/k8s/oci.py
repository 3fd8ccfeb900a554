"""The filter as an OCI image in the form Istio's Wasm fetcher accepts (`make oci`), and the
controller as a container image (`make controller-image`).

    python3 tests/k8s/oci.py layout WASM DIR            # writes an OCI image layout, prints sha256:<manifest digest>
    python3 tests/k8s/oci.py controller BINARY DIR      # the same for the static meshdlp-controller

Istio 1.30 (pkg/wasm/imagefetcher.go) takes the "compat" variant: one image manifest (never an index:
go-containerregistry would pick a linux/amd64 child), whose last layer is
`application/vnd.oci.image.layer.v1.tar+gzip` holding a file named plugin.wasm. A single raw wasm layer
is rejected (tests/k8s/istio_fetch.py says how). The agent checks the pin against the MANIFEST digest,
so the image must be byte-for-byte reproducible: the tar header and the gzip header are written here
rather than by tarfile/gzip, whose output changed between Python versions (gzip's OS byte in 3.11 vs
3.13). Only zlib's deflate remains: the same zlib gives the same digest. `crane push DIR REF` uploads
the layout unchanged, so the digest printed here is the one the registry serves.
"""

import hashlib
import json
import os
import shutil
import struct
import sys
import zlib

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def ustar(name, data, mode=0o644):
    """A tar with one regular file: `mode`, uid/gid 0, mtime 0, no user or group names."""
    def field(value, size):  # NUL-terminated octal, as POSIX ustar writes numbers
        return b"%0*o\0" % (size - 1, value)
    header = (name.encode().ljust(100, b"\0") + field(mode, 8) + field(0, 8) + field(0, 8)
              + field(len(data), 12) + field(0, 12) + b" " * 8 + b"0" + b"\0" * 100 + b"ustar\x0000"
              + b"\0" * 32 * 2 + field(0, 8) * 2).ljust(512, b"\0")
    header = header[:148] + b"%06o\0 " % sum(header) + header[156:]
    return header + data + b"\0" * (-len(data) % 512) + b"\0" * 1024


def gzip_fixed(data):
    """gzip with mtime 0, no file name, XFL 2 (best compression), OS 255 (unknown)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(data) + c.flush()
    return (b"\x1f\x8b\x08\x00" + struct.pack("<I", 0) + b"\x02\xff" + body
            + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF))


def _json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def _descriptor(media_type, blob):
    return {"mediaType": media_type, "digest": "sha256:" + hashlib.sha256(blob).hexdigest(), "size": len(blob)}


def write_image(out, config, layers, config_type=CONFIG):
    """Write an OCI layout with one image manifest; layers are (media type, blob). Returns the
    manifest digest. A layout already at `out` is replaced."""
    if os.path.exists(os.path.join(out, "oci-layout")):
        shutil.rmtree(out)
    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs)
    manifest = _json({"schemaVersion": 2, "mediaType": MANIFEST, "config": _descriptor(config_type, config),
                      "layers": [_descriptor(t, b) for t, b in layers]})
    for blob in [config, *(b for _, b in layers), manifest]:
        with open(os.path.join(blobs, hashlib.sha256(blob).hexdigest()), "wb") as f:
            f.write(blob)
    with open(os.path.join(out, "oci-layout"), "wb") as f:
        f.write(_json({"imageLayoutVersion": "1.0.0"}))
    with open(os.path.join(out, "index.json"), "wb") as f:
        f.write(_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": [_descriptor(MANIFEST, manifest)]}))
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def layout(wasm, out):
    """The compat image of `wasm` (bytes) at `out`; returns the manifest digest."""
    tar = ustar("plugin.wasm", wasm)
    config = _json({"architecture": "wasm", "os": "wasip1",
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}})
    return write_image(out, config, [(LAYER, gzip_fixed(tar))])


# The controller's image: a "scratch" image of one file. The binary is linked statically (musl), so
# it needs no libc, no loader and no shell; it reads no CA bundle either (in a cluster the API
# server's CA comes with the service account token). The user matches the Deployment's
# runAsUser/runAsGroup, so the image runs as non-root even where the pod does not say so.
CONTROLLER_PATH = "meshdlp-controller"
CONTROLLER_USER = "65532:65532"


def controller(binary, out, version=None):
    """The controller image of `binary` (bytes, a static x86_64 Linux executable) at `out`;
    returns the manifest digest. `version` becomes the org.opencontainers.image.version label."""
    tar = ustar(CONTROLLER_PATH, binary, mode=0o755)
    cfg = {"Entrypoint": ["/" + CONTROLLER_PATH], "User": CONTROLLER_USER, "WorkingDir": "/"}
    if version:
        cfg["Labels"] = {"org.opencontainers.image.title": "meshdlp-controller",
                         "org.opencontainers.image.version": version}
    config = _json({"architecture": "amd64", "os": "linux", "config": cfg,
                    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]}})
    return write_image(out, config, [(LAYER, gzip_fixed(tar))])


USAGE = "usage: oci.py layout WASM DIR | oci.py controller BINARY DIR [VERSION]"

if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "layout":
        with open(sys.argv[2], "rb") as f:
            print(layout(f.read(), sys.argv[3]))
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "controller":
        with open(sys.argv[2], "rb") as f:
            print(controller(f.read(), sys.argv[3], *sys.argv[4:]))
    else:
        sys.exit(USAGE)
