"""/api/docs/ (issue 10, item 8) loaded Swagger UI from a CDN (`@latest`, no integrity) on the
product's origin, where the trader's cookie lives. Now every file comes from the product
(drf-spectacular-sidecar, pinned in requirements.txt), fetched here over a real socket."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.django_db

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def _references(html: str) -> list[str]:
    return _REFERENCE.findall(html)


def test_the_docs_page_references_no_external_origin(live_server):
    origin = urlsplit(live_server.url)
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        page = http.get("/api/docs/")
        assert page.status_code == 200
        assert "text/html" in page.headers["Content-Type"]
        references = _references(page.text)
        assert len(references) >= 4  # css, two bundles, the start-up script
        assert "<script>" not in page.text and "<style" not in page.text  # nothing inline
        for reference in references:
            url = urlsplit(urljoin(f"{live_server.url}/api/docs/", reference))
            assert (url.scheme, url.netloc) == (origin.scheme, origin.netloc), reference
            fetched = http.get(url.geturl())
            assert fetched.status_code == 200, reference
        # The start-up script points Swagger UI at our schema, and nowhere else.
        script = next(r for r in references if "script" in r)
        body = http.get(urljoin(f"{live_server.url}/api/docs/", script)).text
        assert "/api/schema/" in body
        assert not re.search(r"https?://", body)
        assert '"validatorUrl": null' in body
    assert "cdn.jsdelivr.net" not in page.text and "unpkg.com" not in page.text


def test_the_sidecar_is_pinned():
    from pathlib import Path

    requirements = (Path(__file__).resolve().parents[2] / "requirements.txt").read_text()
    assert re.search(r"^drf-spectacular-sidecar==\d", requirements, re.MULTILINE)
