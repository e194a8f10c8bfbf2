"""kproxy.kubelet.podnet.pod_hostname: the hostname kubelet gives a pod."""
from kproxy.kubelet.podnet import pod_hostname


def _pod(name: str, **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": spec}


def test_the_pod_name_or_spec_hostname():
    assert pod_hostname(_pod("web-1")) == "web-1"
    assert pod_hostname(_pod("web-1", hostname="db-0", subdomain="db")) == "db-0"


def test_truncated_to_a_dns_label_without_a_trailing_dash():
    assert pod_hostname(_pod("a" * 62 + "-b")) == "a" * 62


def test_fqdn_only_with_a_subdomain():
    assert pod_hostname(_pod("p", hostname="db-0", subdomain="db", setHostnameAsFQDN=True)) == \
        "db-0.db.ns.svc.cluster.local"
    assert pod_hostname(_pod("p", setHostnameAsFQDN=True)) == "p"
