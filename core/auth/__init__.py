"""API tokens, roles and the RBAC policy shared by every interface."""
