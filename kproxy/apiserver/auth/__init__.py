"""Authentication, authorization and audit for the apiserver.

    identity.py    UserInfo and the well-known users and groups
    attributes.py  request -> (verb, apiGroup, resource, namespace, name) (pure)
    tokens.py      service-account tokens: ES256 JWTs signed with DIR/pki/sa.key
    authn.py       client certificates and bearer tokens -> UserInfo
    rbac.py        RBAC evaluation over the stored Role/ClusterRole/(Cluster)RoleBinding objects
    policy.py      the default roles and bindings created at startup
    sa_admission.py fills service-account token Secrets with a signed token on create
    audit.py       one JSON line per mutating request in DIR/audit.log
    middleware.py  the aiohttp middleware tying them together
"""
