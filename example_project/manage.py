#!/usr/bin/env python
"""Django's command-line utility for the django-arc example shop."""

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    # Make ``django_arc`` importable from a checkout without installing it.
    sys.path.insert(0, str(here.parent))
    sys.path.insert(0, str(here))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
