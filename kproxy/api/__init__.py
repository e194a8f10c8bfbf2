"""The Kubernetes API object layer shared by the apiserver, client, controllers and agent.

resources  the resource table (kinds, plurals, REST and store paths)
status     Status objects and ApiError
selectors  label and field selectors (parse, print, match)
names      name, label, port and IP syntax checks with Kubernetes' wording
validation validate(resource, obj, old) -> Status causes
defaults   apply_defaults(resource, obj) and the Service update helpers
patch      JSON merge, strategic merge and JSON patch
meta       small metadata helpers (keys, times, uids, copies)
"""
