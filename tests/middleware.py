"""Test-only middleware."""


class RequestIdempotencyKey:
    """Puts the ``Idempotency-Key`` header where ``django_arc.events.emit`` reads the
    request's key (a stand-in until the idempotency feature sets it itself)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        key = request.headers.get("Idempotency-Key")
        if key:
            request.arc_idempotency_key = key
        return self.get_response(request)
