"""nftables mode: the kube-proxy nftables model in table `ip kproxy`, programmed over netlink.

Modules: wire (nf_tables constants, pure encoder twin, decoding), expr (rule statements), model
(Ruleset, chains, sets), render (ProxyState -> Ruleset, pure), transaction (queued operations ->
one batch), plan (full / partial sync diffs), nlsocket (netlink I/O), backend (NftablesBackend).
"""
