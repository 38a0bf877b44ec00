"""Pulumi program for the serverless transaction pipeline: `TapStack` and its components."""
