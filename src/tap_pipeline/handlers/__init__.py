"""Lambda entry points. Each module is thin: event plumbing and observability around domain code."""
