"""A `.env` file in the project root, read at start by settings, the supervisor and the image's roles:
each `NAME=value` line sets NAME unless the real environment already has it (the environment wins).
`#` comments, blank lines, `export NAME=value` and single- or double-quoted values are understood;
no interpolation. GOMODEL_ENV_FILE names another file ("" reads none). Standard library only: the
supervisor must not import Django."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def parse(text: str) -> dict[str, str]:
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not name.replace("_", "").isalnum():
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


def load(path: Path | str | None = None, environ=os.environ) -> dict[str, str]:
    """Set the file's variables that `environ` lacks; return what was set."""
    if path is None:
        path = environ.get("GOMODEL_ENV_FILE", BASE_DIR / ".env")
    if not path:
        return {}
    try:
        text = Path(path).read_text()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        return {}
    added = {name: value for name, value in parse(text).items() if name not in environ}
    environ.update(added)
    return added
