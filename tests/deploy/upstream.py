"""The fake OpenAI-format upstream (tests/fake_upstream.py) as a service of the deployment test's compose
stack: `python3 -m tests.deploy.upstream` serves it on 0.0.0.0:9000."""

import uvicorn

from tests.fake_upstream import FakeUpstream

if __name__ == "__main__":
    uvicorn.run(FakeUpstream(), host="0.0.0.0", port=9000, log_level="warning", lifespan="on")
