"""Fraud-detection evaluation: seeded labelled traffic, run through the real detector, scored per
attack family and per rule (`make fraud-eval`, FRAUD.md)."""
