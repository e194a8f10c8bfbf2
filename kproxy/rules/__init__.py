"""`kproxy rules`: what implements each Service on a node, read from the kernel.

Modules:
- model.py: the mode-independent model (NodeRules -> ServiceRules -> frontends, endpoints,
  kernel objects with counters) and its JSON form (documented in docs/rules-schema.json).
- adapter.py: the ModeAdapter protocol each proxy mode implements, and the adapter registry.
- iptables.py: the iptables adapter (chains and rules from iptables-save -c).
- trace.py: the mode-independent trace report (frontend, candidates, masquerade, rule path).
- diff.py: desired (rendered from the apiserver's objects) against kernel, object by object.
- desired.py: the desired ProxyState of one node, built from the apiserver's objects.
- output.py: text tables sized to the terminal, JSON and YAML.
"""
