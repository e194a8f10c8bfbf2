"""iptables mode (installed as kproxy.iptables): the kube-proxy iptables model.

Modules, one responsibility each:
- names.py    chain names (static chains, stable KUBE-SVC-/SVL-/EXT-/FW-/SEP- hashes as kube-proxy)
- ruleset.py  the frozen rendered model: Ruleset, per-ServicePort Fragment, JumpRule, RenderOptions
- render.py   pure ProxyState -> Ruleset, reusing unchanged fragments
- restore.py  pure Ruleset -> iptables-restore --noflush text (full, or only what changed)
- save.py     pure parsing of iptables-save output (for inspect, cleanup and drift repair)
- trace.py    pure packet tracer over a Ruleset (where can a new connection go, with what odds)
- driver.py   the one iptables driver (variant, save, restore, xtables lock, error diagnosis, in a
              netns), also used by the ipvs and userspace modes and `kproxy rules`
- backend.py  IptablesBackend: the iptables mode's kernel I/O, through driver.py
"""
