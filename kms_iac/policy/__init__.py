"""Key policy documents: building, normalizing and (later) evaluating them, in one place."""
