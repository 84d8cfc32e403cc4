from . import provider_admin  # noqa: F401  (registers the provider config and model alias admins)
