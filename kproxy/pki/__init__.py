"""kproxy's PKI: a cluster CA, the apiserver serving certificate, client certificates per
identity, the service-account signing key, and kubeconfig files that carry that material.

Modules:
    ca.py          certificate authority: create/load keys and certificates (pure crypto)
    files.py       private file writing (0600 files in 0700 directories, atomic)
    kubeconfig.py  kubeconfig documents and files for one identity
    bootstrap.py   everything `kproxy apiserver` needs on first start (idempotent)
    cli.py         `kproxy pki` (issue client certificates, rotate the serving certificate)
"""
