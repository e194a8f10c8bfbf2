"""Authentication, authorization and audit for the apiserver.

    identity.py    UserInfo and the well-known users and groups
    attributes.py  request -> (verb, apiGroup, resource, namespace, name) (pure)
    tokens.py      service-account tokens: ES256 JWTs signed with DIR/pki/sa.key
    bound_tokens.py bound, expiring tokens' claims and their checks (pure)
    tokenrequest.py TokenRequest (serviceaccounts/token): issues bound tokens
    authn.py       client certificates and bearer tokens -> UserInfo
    rbac.py        RBAC evaluation over the stored Role/ClusterRole/(Cluster)RoleBinding objects
    escalation.py  no granting of permissions one does not hold (escalate/bind verbs)
    impersonation.py Impersonate-User/-Group headers, allowed by the impersonate verb
    policy.py      the default roles and bindings created at startup
    sa_admission.py checks service-account token Secrets on create (no token in them)
    token_controller.py fills them with a signed token afterwards (only it holds the key)
    reviews.py     access reviews (can-i, --list), whoami, TokenReview: answered, never stored
    endpoints.py   the HTTP side of reviews.py and tokenrequest.py
    audit.py       one JSON line per mutating request in DIR/audit.log
    middleware.py  the aiohttp middleware tying them together
"""
