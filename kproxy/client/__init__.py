"""kproxy.client: a watch-based Kubernetes client shared by controllers, agent, CLIs and lab.

Uses no apiserver internals; works against kproxy's apiserver and a real Kubernetes one.
"""
from kproxy.api.status import ApiError
from kproxy.client.errors import ApiConnectionError
from kproxy.client.informer import Informer, object_key
from kproxy.client.kubeconfig import ClusterConfig, KubeconfigError, in_cluster_config, load_kubeconfig
from kproxy.client.rest import ApiClient
from kproxy.client.sync import Client

__all__ = [
    "ApiClient", "ApiConnectionError", "ApiError", "Client", "ClusterConfig", "Informer",
    "KubeconfigError", "in_cluster_config", "load_kubeconfig", "object_key",
]
