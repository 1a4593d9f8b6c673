"""API tests."""

import warnings

# Starlette >= 1 prefers httpx2 for its TestClient; httpx works the same for these tests.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
