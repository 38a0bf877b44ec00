"""The contract between the stack (``lib``), the functions (``tap_pipeline``) and the local runtime.

Everything two of them must agree on lives here, once: the API's request and response models
(:mod:`.api`), the queue message (:mod:`.messages`), each function's environment and handler
(:mod:`.environment`), table keys and index names (:mod:`.tables`), metric names the alarms watch
(:mod:`.metrics`), the merchants the stack seeds (:mod:`.seed`), and the pure card-number and money
rules the request model applies (:mod:`.card_numbers`, :mod:`.money`).

Imports run one way: this package imports neither Pulumi nor boto3 (a unit test checks it), the
stack and the functions import it, and it imports neither of them. It ships inside the functions'
code asset next to ``tap_pipeline``.
"""
