"""A separate process sending one idempotent request (``test_idempotency_concurrency.py``).

Usage: ``python -m tests.idempotency_procs <user id> <org id> <key> <start at (epoch s)>
[hang]``. It waits until ``start at`` so two processes fire together, sends ``POST
/api/idem-products/`` with the test body and prints ``{"status", "body", "replayed"}`` as one
JSON line. With ``hang`` its ``before_create`` prints ``"in flight"`` and sleeps, so the
parent can SIGKILL it mid-request. The database (and Redis) come from the environment
``tests/relay_procs.relay_env`` builds.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from tests.testapp.feature_resources import IdempotentProductResource

    user_id, org_id, key, start_at = argv[:4]
    if len(argv) > 4 and argv[4] == "hang":

        def hang(self, request, data):
            print("in flight", flush=True)
            time.sleep(120)

        IdempotentProductResource.before_create = hang
    client = APIClient()
    client.force_authenticate(get_user_model().objects.get(pk=int(user_id)))
    delay = float(start_at) - time.time()
    if delay > 0:
        time.sleep(delay)
    response = client.post(
        "/api/idem-products/",
        {"name": "Widget", "sku": "W-1", "price": "9.50"},
        format="json",
        HTTP_X_ORGANIZATION_ID=org_id,
        HTTP_IDEMPOTENCY_KEY=key,
    )
    print(
        json.dumps(
            {
                "status": response.status_code,
                "body": response.content.decode(),
                "replayed": response.get("X-Idempotency-Replayed"),
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
