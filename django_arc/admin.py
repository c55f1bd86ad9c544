"""Admin registrations for django-arc's models."""
