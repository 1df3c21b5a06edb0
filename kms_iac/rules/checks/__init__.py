"""One module per rule, each registering itself with ``@rule``."""
