"""Decodes a Sprawl `/stats/hdr` histogram (HDR V2 + DEFLATE, base64) with the Python
HdrHistogram implementation and prints its count and percentiles as JSON, so a test can compare
them with what the node reports in `/stats`.

Usage: python3 hdr_decode.py BASE64_FILE
"""
import json
import sys

from hdrh.histogram import HdrHistogram

encoded = open(sys.argv[1]).read().strip()
h = HdrHistogram.decode(encoded)
print(json.dumps({
    "count": h.get_total_count(),
    "p50": h.get_value_at_percentile(50),
    "p99": h.get_value_at_percentile(99),
    "max": h.get_max_value(),
}))
