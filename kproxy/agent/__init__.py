"""The node agent: Services and EndpointSlices in, kernel rules out.

    config.py         AgentConfig: KubeProxyConfiguration YAML + flags
    translate.py      pure API dict -> ServicePort/Endpoint translation
    tracker.py        change trackers ({previous, current}) and O(changed) ProxyState building
    state.py          ProxyState, the model every backend receives (contract)
    backend.py        the Backend protocol and registry of modes (contract)
    runner.py         BoundedFrequencyRunner: when syncs run
    proxier.py        informers -> trackers -> the one sync function -> backend
    conntrack.py      stale UDP/SCTP conntrack cleanup (plan + executor)
    health.py         proxier health (/healthz, /livez semantics)
    metrics.py        kubeproxy_* Prometheus metrics
    servers.py        the HTTP listeners, opened inside the agent's netns
    servicehealth.py  health-check node port servers
    cli.py            `kproxy agent`;  cleanup_cli.py: `kproxy cleanup`
"""
