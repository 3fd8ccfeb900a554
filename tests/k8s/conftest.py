"""Session fixtures for tests/k8s: one API server (etcd + k8s/testserver), registry and kubeconfig
for the whole session, stopped by pid at the end (cluster.py)."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import cluster as cluster_mod  # noqa: E402


@pytest.fixture(scope="session")
def cluster():
    c = cluster_mod.Cluster().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def istio_crds(cluster):
    """Istio's CRDs (../shared/istio/crd-all.gen.yaml) applied server-side; the CRD names."""
    return cluster.apply_istio_crds()
