"""Tracing off (no OTLP endpoint) loads nothing of OpenTelemetry's traces: a fresh interpreter imports the /v1 app
and the pipeline without the tracing SDK or the exporter (tests/e2e/test_request_walk.py keeps the call's walk from
growing). redis-py 8 imports OpenTelemetry's metrics SDK when it is installed (its observability, off unless
configured): that is not ours to avoid."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_gateway_imports_no_opentelemetry_when_tracing_is_off():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["DJANGO_SETTINGS_MODULE"] = "gomodel.settings"
    code = ("import sys, django; django.setup(); from django.conf import settings; "
            "import gomodel.gateway.app, gomodel.gateway.pipeline.run, gomodel.gateway.runtime; "
            "print(settings.OTEL_TRACING, sorted(m for m in sys.modules if m.startswith(("
            "'opentelemetry.sdk.trace', 'opentelemetry.exporter', 'opentelemetry.proto'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "[]"]
