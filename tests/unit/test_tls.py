"""Trust for outside servers (server/tls.py): one context per CA bundle, renewed when it changes."""

from __future__ import annotations

import os
from pathlib import Path

import trustme

from server.tls import ExtraCAAdapter, tls_context


def test_one_context_per_bundle_and_a_new_one_when_the_file_changes(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(bundle))
    first = tls_context(bundle)
    assert tls_context(bundle) is first
    assert tls_context(None) is tls_context(None) is not first
    loaded = first.cert_store_stats()["x509_ca"]
    assert loaded == tls_context(None).cert_store_stats()["x509_ca"] + 1, "system CAs plus ours"

    trustme.CA().cert_pem.write_to_path(str(bundle))  # rotated: another CA, same path
    os.utime(bundle, ns=(1, 1))
    assert tls_context(bundle) is not first


def test_the_adapter_leaves_no_ca_file_for_urllib3_to_load_per_connection(tmp_path: Path) -> None:
    class Pool:
        ca_certs: str | None = None
        ca_cert_dir: str | None = None
        cert_reqs = ""

    adapter = ExtraCAAdapter(None)
    pool = Pool()
    adapter.cert_verify(pool, "https://graph.example/v1.0", True, None)
    assert (pool.cert_reqs, pool.ca_certs, pool.ca_cert_dir) == ("CERT_REQUIRED", None, None)
