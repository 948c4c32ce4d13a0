"""Read the worker's Prometheus endpoint in tests: scrape it, sum a metric's samples."""

from __future__ import annotations

import re
import urllib.request


def scrape(address: str) -> str:
    """Return the text of ``http://<address>/metrics``."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text: str = answer.read().decode()
    return text


def value(metrics: str, name: str, **labels: str) -> float:
    """Sum the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? ([0-9.e+-]+)$", line)
        if match is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(key) == wanted for key, wanted in labels.items()):
            total += float(match.group(2))
    return total
