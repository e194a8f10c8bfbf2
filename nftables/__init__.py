"""nftables mode: the kube-proxy nftables model in table `ip kproxy`, programmed over netlink.

Modules: wire (nf_tables constants, pure encoder twin), expr (rule statements), model (Ruleset,
chains, sets), render (ProxyState -> Ruleset, pure), transaction (operations as data -> one
batch), fake (an in-memory table that applies transactions and checks references), plan (full /
partial sync diffs), nlsocket (the nf_tables client on kproxy.netlink), backend (NftablesBackend).
"""
