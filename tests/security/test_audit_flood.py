"""The audit log cannot be flooded (issue 15, item 8): a policy decides what is recorded
(anonymous requests not at all by default) and the file rotates by size, keeping a bounded
number of old files."""
from __future__ import annotations

import subprocess
import sys

import pytest

from kproxy.apiserver.auth.attributes import request_attributes
from kproxy.apiserver.auth.audit import DEFAULT_POLICY, AuditLog, PolicyError, parse_policy
from kproxy.apiserver.auth.identity import ANONYMOUS, authenticated_user
from tests.apiserver.httputil import Http, client_tls_context

ALICE = authenticated_user("alice", ["dev"])
CREATE_EVENT = request_attributes("POST", "/api/v1/namespaces/default/events", {})
CREATE_SERVICE = request_attributes("POST", "/api/v1/namespaces/default/services", {})


def test_log_rotates_by_size_and_keeps_a_bounded_number_of_files(tmp_path):
    path = tmp_path / "audit.log"
    audit = AuditLog(str(path), max_bytes=2000, max_backups=2)
    try:
        for _ in range(200):
            audit.record(ALICE, CREATE_SERVICE, 201, "127.0.0.1")
    finally:
        audit.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    for p in tmp_path.iterdir():
        assert 0 < p.stat().st_size <= 2000
        assert p.stat().st_mode & 0o777 == 0o600
        assert all(line.startswith("{") for line in p.read_text().splitlines())


def test_default_policy_skips_anonymous_requests():
    assert DEFAULT_POLICY.level(ANONYMOUS, CREATE_SERVICE) == "None"
    assert DEFAULT_POLICY.level(ALICE, CREATE_SERVICE) == "Metadata"


def test_policy_rules_by_user_and_resource():
    policy = parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
        {"level": "None", "users": ["system:kube-proxy"]},
        {"level": "Metadata"},
    ]})
    assert policy.level(ALICE, CREATE_EVENT) == "None"
    assert policy.level(ALICE, CREATE_SERVICE) == "Metadata"
    assert policy.level(authenticated_user("system:kube-proxy", []), CREATE_SERVICE) == "None"
    assert policy.level(ALICE, request_attributes("GET", "/healthz", {})) == "Metadata"


@pytest.mark.parametrize("doc, where", [
    ({"kind": "Policy", "rules": [{"level": "Loud"}]}, "rules[0].level"),
    ({"kind": "Policy", "rules": [{"level": "None", "users": "bob"}]}, "rules[0].users"),
    ({"kind": "Policy", "rules": []}, "non-empty"),
    ([], "kind"),
])
def test_bad_policies_say_where(doc, where):
    with pytest.raises(PolicyError, match=where.replace("[", r"\[").replace("]", r"\]")):
        parse_policy(doc)


def test_bad_policy_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("kind: Policy\nrules:\n- level: Loud\n")
    proc = subprocess.run([sys.executable, "-m", "kproxy", "apiserver", "--data-dir", str(tmp_path / "d"),
                           "--audit-policy-file", str(bad), "--bind", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "--audit-policy-file" in proc.stderr and "rules[0].level" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_anonymous_flood_does_not_grow_the_audit_log(secure_apiserver):
    anonymous = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, None))
    admin = Http(secure_apiserver.url, ssl_context=client_tls_context(secure_apiserver.data_dir, "admin"))
    log = secure_apiserver.data_dir / "audit.log"

    def anonymous_lines() -> int:  # the controllers write (and are audited) meanwhile
        return log.read_text().count('"user":"system:anonymous"')

    before = anonymous_lines()
    for _ in range(200):
        assert anonymous.call("POST", "/api/v1/namespaces", {"metadata": {"name": "x"}})[0] == 401
    assert anonymous_lines() == before
    # an authenticated write is still recorded
    admin.call("POST", "/api/v1/namespaces", {"metadata": {"name": "audited-ns"}})
    assert '"name":"audited-ns"' in log.read_text()
