"""WSGI entry point (``gunicorn example.wsgi``)."""

import os
import sys
from pathlib import Path

_here = Path(__file__).resolve().parent.parent
for _path in (str(_here), str(_here.parent)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
