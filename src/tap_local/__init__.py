"""The whole pipeline on one machine, built from the Pulumi program itself.

The stack is evaluated under a mock engine whose answers are resources created in an AWS emulator
(moto on 127.0.0.1, in its own process, with the corrections in `moto_fixes`); functions run in
worker processes with the environment the stack gives them; SQS triggers are polled the way Lambda
polls; the REST API is served from the stack's OpenAPI document. Nothing in `lib/` or
`tap_pipeline` knows this package exists: the functions only see `AWS_ENDPOINT_URL`.
"""
