"""Issue 15 item 1: nobody grants RBAC permissions they do not hold, as kube-apiserver: a Role
or ClusterRole only with every permission it grants (or `escalate`), a binding only with every
permission of its role (or `bind` on it). Refusals are 403 with upstream's message."""
from __future__ import annotations

from kproxy.apiserver.auth.escalation import compact_string, missing_permissions

RBAC = "/apis/rbac.authorization.k8s.io/v1"
GRANT = "is attempting to grant RBAC permissions not currently held"
REF = {"apiGroup": "rbac.authorization.k8s.io"}
DEVS = ("devs",)  # every user's group here: refusals name it


def grant(admin, namespace, user, rules, name=None):
    """Gives `user` exactly `rules` in `namespace` (cluster-wide when None), as the admin."""
    name = name or f"{user}-rights"
    subject = [{"kind": "User", "name": user, **REF}]
    if namespace is None:
        admin.ok("POST", f"{RBAC}/clusterroles", {"metadata": {"name": name}, "rules": rules})
        admin.ok("POST", f"{RBAC}/clusterrolebindings", {"metadata": {"name": name}, "subjects": subject,
                                                         "roleRef": {**REF, "kind": "ClusterRole", "name": name}})
    else:
        admin.ok("POST", f"{RBAC}/namespaces/{namespace}/roles", {"metadata": {"name": name}, "rules": rules})
        admin.ok("POST", f"{RBAC}/namespaces/{namespace}/rolebindings", {
            "metadata": {"name": name}, "subjects": subject, "roleRef": {**REF, "kind": "Role", "name": name}})


def namespace(admin, name):
    assert admin.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] in (201, 409)


def binding(name, user, kind, role):
    return {"metadata": {"name": name}, "subjects": [{"kind": "User", "name": user, **REF}],
            "roleRef": {**REF, "kind": kind, "name": role}}


def assert_escalation_refused(status, body, user):
    assert status == 403, body
    assert body["reason"] == "Forbidden", body
    assert f'user "{user}" (groups=["devs" "system:authenticated"]) {GRANT}:\n' in body["message"], body


def test_binding_cluster_admin_with_only_create_rolebindings_is_refused(admin, user_client):
    namespace(admin, "esc1")
    grant(admin, "esc1", "binder", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
                                     "verbs": ["create"]}])
    binder = user_client("binder", DEVS)
    status, body = binder.call("POST", f"{RBAC}/namespaces/esc1/rolebindings",
                               binding("take-over", "binder", "ClusterRole", "cluster-admin"))
    assert_escalation_refused(status, body, "binder")
    assert body["message"].startswith('rolebindings.rbac.authorization.k8s.io "take-over" is forbidden: ')
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in body["message"]
    assert admin.call("GET", f"{RBAC}/namespaces/esc1/rolebindings/take-over")[0] == 404
    assert binder.call("GET", "/api/v1/namespaces/esc1/secrets")[0] == 403


def test_role_with_wildcards_needs_them_or_escalate(admin, user_client):
    namespace(admin, "esc2")
    grant(admin, "esc2", "author", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                                     "verbs": ["create", "update", "patch"]},
                                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}])
    author = user_client("author", DEVS)
    everything = {"metadata": {"name": "all"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    assert_escalation_refused(*author.call("POST", f"{RBAC}/namespaces/esc2/roles", everything), "author")
    # a subset of what the author holds is fine; widening it by update or patch is not
    subset = {"metadata": {"name": "cm-reader"}, "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                                                            "verbs": ["get"]}]}
    assert author.call("POST", f"{RBAC}/namespaces/esc2/roles", subset)[0] == 201
    status, body = author.call("PATCH", f"{RBAC}/namespaces/esc2/roles/cm-reader",
                               {"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]},
                               content_type="application/merge-patch+json")
    assert_escalation_refused(status, body, "author")
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}' in body["message"]
    current = admin.ok("GET", f"{RBAC}/namespaces/esc2/roles/cm-reader")
    current["rules"][0]["resources"] = ["pods"]
    assert_escalation_refused(*author.call("PUT", f"{RBAC}/namespaces/esc2/roles/cm-reader", current), "author")
    # with `escalate` on roles the same request is allowed
    grant(admin, "esc2", "author", [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
                                     "verbs": ["escalate"]}], name="author-escalate")
    assert author.call("POST", f"{RBAC}/namespaces/esc2/roles", everything)[0] == 201


def test_bind_verb_with_resource_names(admin, user_client):
    namespace(admin, "esc3")
    admin.ok("POST", f"{RBAC}/namespaces/esc3/roles", {"metadata": {"name": "secret-reader"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]})
    grant(admin, "esc3", "lead", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["create"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"],
         "resourceNames": ["secret-reader"]}])
    lead = user_client("lead", DEVS)
    assert lead.call("POST", f"{RBAC}/namespaces/esc3/rolebindings",
                     binding("ok", "intern", "Role", "secret-reader"))[0] == 201
    assert_escalation_refused(*lead.call("POST", f"{RBAC}/namespaces/esc3/rolebindings",
                                         binding("no", "intern", "ClusterRole", "cluster-admin")), "lead")
    # a role that does not exist cannot be bound by someone who is not allowed to bind it
    assert lead.call("POST", f"{RBAC}/namespaces/esc3/rolebindings", binding("ghost", "x", "Role", "ghost"))[0] == 404


def test_holding_the_permissions_is_enough_and_clusterroles_check_urls(admin, user_client):
    grant(admin, None, "ops", [
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles", "clusterrolebindings"],
         "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
        {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]}])
    ops = user_client("ops", DEVS)
    held = {"metadata": {"name": "ops-view"}, "rules": [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"nonResourceURLs": ["/metrics", "/logs/kubelet"], "verbs": ["get"]}]}
    assert ops.call("POST", f"{RBAC}/clusterroles", held)[0] == 201
    assert ops.call("POST", f"{RBAC}/clusterrolebindings", binding("ops-view", "bob", "ClusterRole", "ops-view"))[0] == 201
    status, body = ops.call("POST", f"{RBAC}/clusterroles", {"metadata": {"name": "ops-more"}, "rules": [
        {"nonResourceURLs": ["/debug/*"], "verbs": ["get"]}]})
    assert_escalation_refused(status, body, "ops")
    assert '{NonResourceURLs:["/debug/*"], Verbs:["get"]}' in body["message"]
    # a namespaced grant does not count for a cluster-wide role
    namespace(admin, "esc4")
    grant(admin, "esc4", "ops", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}], name="ops-ns")
    assert_escalation_refused(*ops.call("POST", f"{RBAC}/clusterroles", {"metadata": {"name": "ops-secrets"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]}), "ops")


def test_coverage_rules():
    held = [{"apiGroups": [""], "resources": ["*/status", "pods/log", "configmaps"], "verbs": ["get"],
             "resourceNames": []},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"], "resourceNames": ["web"]}]
    assert missing_permissions(held, [{"apiGroups": [""], "resources": ["services/status", "pods/log", "configmaps"],
                                       "verbs": ["get"]}]) == []
    assert missing_permissions(held, [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"],
                                       "resourceNames": ["web"]}]) == []
    missing = missing_permissions(held, [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]},
                                         {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}])
    assert sorted(map(compact_string, missing)) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["get"]}',
        '{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}']
    assert missing_permissions([], [{"verbs": "junk", "apiGroups": 3}, "junk"]) == []
    # "pods/*" is no wildcard upstream: it names a subresource called "*"
    assert missing_permissions([{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}],
                               [{"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]}])
