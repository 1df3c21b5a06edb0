"""Adapters: each turns one source of keys (templates, plans, Pulumi resources, live accounts) into views."""
