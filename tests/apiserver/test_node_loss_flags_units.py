"""The apiserver flags a lab uses for node loss and in-cluster access: --netns-bind's parsing
and the default tolerations' seconds."""
import pytest

from kproxy.api import resources as R
from kproxy.apiserver.cli import parse_netns_bind
from kproxy.apiserver.toleration_admission import DefaultTolerationSeconds
from kproxy.cli.main import CLIError


def test_netns_bind_parses():
    assert parse_netns_bind("lab-net:10.200.0.1:6443") == ("lab-net", "10.200.0.1", 6443)


@pytest.mark.parametrize("text, message", [
    ("10.200.0.1:6443", "want NETNS:IP:PORT"),
    (":10.200.0.1:6443", "want NETNS:IP:PORT"),
    ("lab-net:127.0.0.1:6443", "cannot be published"),
    ("lab-net:0.0.0.0:6443", "cannot be published"),
    ("lab-net:example:6443", "is not an IP address"),
    ("lab-net:10.200.0.1:x", "is not a number"),
])
def test_netns_bind_rejects(text, message):
    with pytest.raises(CLIError, match=message):
        parse_netns_bind(text)


def test_default_tolerations_take_their_own_seconds():
    pod = {"spec": {"tolerations": [{"key": "other", "operator": "Exists", "effect": "NoSchedule"}]}}
    DefaultTolerationSeconds(7, 3).admit_create(R.PODS, "default", pod)
    seconds = {t["key"]: t.get("tolerationSeconds") for t in pod["spec"]["tolerations"]}
    assert seconds == {"other": None, "node.kubernetes.io/not-ready": 7, "node.kubernetes.io/unreachable": 3}
