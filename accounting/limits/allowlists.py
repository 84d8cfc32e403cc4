"""Model allow-lists of tenants and keys: what an entry may be, and what it allows (pure functions).

An entry is one of
- `provider/model`: that model on that provider config (the model part may hold more slashes:
  `openrouter/meta-llama/llama-3.1-8b-instruct`);
- `provider/*`: every model of that provider config;
- a name without a slash: a model name exactly as a client sends it (a virtual model, or a bare model
  name), whatever it routes to.

A request is allowed when its requested name is listed as such (and no `provider` hint redirects it),
or when the `provider/model` it resolves to matches an entry; failover targets outside the list are
skipped, never called. An empty list allows everything. A key and its tenant must both allow a model.
"""

import re

MAX_ENTRIES = 500
MAX_ENTRY_LENGTH = 255
PROVIDER = re.compile(r"[-a-zA-Z0-9_]{1,64}")  # a ProviderConfig name (a slug)
MODEL = re.compile(r"[^\s*]{1,255}")  # no whitespace, no wildcard inside a model id


class AllowListError(ValueError):
    pass


def validate_entry(entry) -> str:
    if not isinstance(entry, str):
        raise AllowListError("Each entry must be a string.")
    entry = entry.strip()
    if not entry or len(entry) > MAX_ENTRY_LENGTH:
        raise AllowListError(f"Entries must be 1 to {MAX_ENTRY_LENGTH} characters.")
    provider, sep, model = entry.partition("/")
    if not sep:
        if not MODEL.fullmatch(entry):
            raise AllowListError(f"'{entry}': a model name has no spaces and no '*' (use 'provider/*').")
        return entry
    if not PROVIDER.fullmatch(provider):
        raise AllowListError(f"'{entry}': '{provider}' is not a provider name (letters, digits, '-', '_').")
    if model != "*" and not MODEL.fullmatch(model):
        raise AllowListError(f"'{entry}': use 'provider/model' or 'provider/*' ('*' only as the whole model).")
    return entry


def validate_entries(entries) -> list[str]:
    """The entries cleaned (stripped, duplicates dropped, order kept); AllowListError names a bad one."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise AllowListError("Must be a list of entries.")
    if len(entries) > MAX_ENTRIES:
        raise AllowListError(f"At most {MAX_ENTRIES} entries.")
    cleaned: list[str] = []
    for entry in entries:
        entry = validate_entry(entry)
        if entry not in cleaned:
            cleaned.append(entry)
    return cleaned


def parse_lines(text: str) -> list[str]:
    """One entry a line (commas also separate), as typed in the admin."""
    return validate_entries([part for line in text.splitlines() for part in line.split(",") if part.strip()])


class AllowList:
    """A validated list, indexed for the hot path: a few set lookups per check."""

    __slots__ = ("names", "paths", "providers")

    def __init__(self, entries):
        self.names: frozenset[str] = frozenset(e for e in entries if "/" not in e)
        self.paths: frozenset[str] = frozenset(e for e in entries if "/" in e and not e.endswith("/*"))
        self.providers: frozenset[str] = frozenset(e[:-2] for e in entries if e.endswith("/*"))

    def __bool__(self):
        return bool(self.names or self.paths or self.providers)

    def allows_target(self, provider: str, model: str) -> bool:
        return provider in self.providers or f"{provider}/{model}" in self.paths

    def allows_name(self, requested: str) -> bool:
        return requested in self.names


EMPTY = AllowList(())


def permitted(lists, requested: str, hinted: bool, chain: list) -> list:
    """The part of `chain` ((target, model) pairs, target with a `.name`) every list allows.

    A list that names the requested model itself allows the whole chain (unless a `provider` hint
    chose the target); otherwise each target must match. [] means: not allowed."""
    for allow in lists:
        if not allow or (not hinted and allow.allows_name(requested)):
            continue
        chain = [(target, model) for target, model in chain if allow.allows_target(target.name, model)]
    return chain
