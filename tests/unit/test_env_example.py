""".env.example lists every variable the code reads (#19: nine were missing), and every variable
compose.yaml interpolates; README documents every flag of the supervisor."""

import re
from pathlib import Path

from gomodel import supervisor
from providers.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[2]
READS = re.compile(r"""(?:environ\.get|environ\.setdefault|getenv|env_int|env_float|env_bool|environ\[)"""
                   r"""\(?\s*["']([A-Z][A-Z0-9_]+)["']""")
PREFIXED = re.compile(r"""environ\.get\(f["']\{spec\.env_prefix\}(_[A-Z_]+)["']""")


def example() -> str:
    return (ROOT / ".env.example").read_text()


def code_files():
    for package in ("gomodel", "accounting", "providers"):
        yield from (ROOT / package).rglob("*.py")
    yield ROOT / "manage.py"


def test_every_variable_the_code_reads_is_in_env_example():
    text = example()
    read = {}
    for path in code_files():
        for name in READS.findall(path.read_text()):
            read.setdefault(name, path.relative_to(ROOT))
    assert len(read) > 60  # the scan finds them (settings alone reads most)
    missing = {name: str(where) for name, where in read.items() if name not in text}
    assert not missing, f".env.example lacks {missing}"


def test_every_provider_variable_is_in_env_example():
    text = example()
    suffixes = set()
    for path in code_files():
        suffixes.update(PREFIXED.findall(path.read_text()))
    assert suffixes == {"_API_KEY", "_BASE_URL", "_MODELS", "_RPM", "_TPM", "_CONCURRENCY",
                        "_MODEL_QUOTAS"}
    for suffix in suffixes:
        assert f"<P>{suffix}" in text
    for spec in CATALOGUE.values():
        assert f"{spec.env_prefix}_BASE_URL" in text, spec.env_prefix


def test_every_compose_variable_is_in_env_example():
    text = example()
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", (ROOT / "compose.yaml").read_text()))
    assert "POSTGRES_PASSWORD" in names
    assert not {n for n in names if n not in text}


def test_the_supervisor_flags_are_documented():
    readme = (ROOT / "README.md").read_text()
    flags = [option for action in supervisor.build_parser()._actions for option in action.option_strings
             if option not in ("-h", "--help")]
    assert flags and "--no-celery" in flags
    for flag in flags:
        assert f"`{flag}" in readme, flag
