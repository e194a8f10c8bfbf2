"""Service-account token cost per request: authenticating a bound token (TokenRequest: exp,
nbf, audience, account and bound-object lookups) against a legacy secret-based token (the
baseline, measured in the same run), and issuing a bound token.

    python -m bench.sa_tokens [--rounds 2000]

In process, against a real sqlite store in a temporary directory; no server, no network.
"""
from __future__ import annotations

import argparse
import base64
import tempfile
import time
from typing import Callable

from kproxy.api import resources as R
from kproxy.apiserver.auth.authn import SA_TOKEN_TYPE, SA_UID_ANNOTATION, TokenAuthenticator
from kproxy.apiserver.auth.sa_admission import TOKEN_KEY
from kproxy.apiserver.auth.tokenrequest import TokenIssuer
from kproxy.apiserver.auth.tokens import ServiceAccountClaims, TokenSigner
from kproxy.pki.ca import new_key
from kproxy.store import open_store


def per_call(fn: Callable[[], object], rounds: int, repeats: int = 3) -> float:
    """Best mean seconds per call over `repeats` runs of `rounds` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sa-tokens-") as tmp, open_store(tmp) as store:
        meta = {"name": "robot", "namespace": "ns1", "uid": "sa-1"}
        store.create(R.SERVICE_ACCOUNTS.store_key("robot", "ns1"), {"metadata": meta})
        store.create(R.PODS.store_key("web", "ns1"), {"metadata": {"name": "web", "namespace": "ns1", "uid": "p-1"},
                                                     "spec": {"serviceAccountName": "robot"}})
        signer = TokenSigner(new_key())
        legacy = signer.sign(ServiceAccountClaims("ns1", "robot-token", "robot", "sa-1"))
        store.create(R.SECRETS.store_key("robot-token", "ns1"), {
            "metadata": {"name": "robot-token", "namespace": "ns1", "annotations": {SA_UID_ANNOTATION: "sa-1"}},
            "type": SA_TOKEN_TYPE, "data": {TOKEN_KEY: base64.b64encode(legacy.encode()).decode()}})
        issuer, authn = TokenIssuer(store, signer), TokenAuthenticator(store, signer)
        bound = issuer.issue("ns1", "robot", {})["status"]["token"]
        to_pod = issuer.issue("ns1", "robot", {"spec": {"boundObjectRef": {"kind": "Pod", "name": "web"}}})
        pod_bound = to_pod["status"]["token"]
        baseline = per_call(lambda: authn.authenticate(legacy), args.rounds)
        rows = [("authenticate legacy token (baseline)", baseline),
                ("authenticate bound token", per_call(lambda: authn.authenticate(bound), args.rounds)),
                ("authenticate pod-bound token", per_call(lambda: authn.authenticate(pod_bound), args.rounds)),
                ("issue a bound token (TokenRequest)", per_call(lambda: issuer.issue("ns1", "robot", {}), args.rounds))]
    print(f"{'operation':40s} {'us/call':>9s} {'vs baseline':>12s}")
    for name, seconds in rows:
        print(f"{name:40s} {seconds * 1e6:9.1f} {seconds / baseline:11.2f}x")


if __name__ == "__main__":
    main()
