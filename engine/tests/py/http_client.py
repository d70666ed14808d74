"""Drives the node's HTTP API with Python's standard library client (urllib), as a script user
would: topics, publish, read, the compatibility endpoints and error answers.

Usage: python3 http_client.py HOST:PORT   (exits non-zero with a message on the first failure)
"""
import json
import sys
import urllib.error
import urllib.request

BASE = "http://" + sys.argv[1]


def call(method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(BASE + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), dict(e.headers)


def expect(cond, what):
    if not cond:
        print("FAILED:", what, file=sys.stderr)
        sys.exit(1)


status, body, _ = call("POST", "/topics", {"name": "py", "partitions": 3, "retention_ms": 3600000})
expect(status == 201, f"create topic: {status} {body}")
status, body, _ = call("GET", "/topics/py")
expect(status == 200 and body["partitions"] == 3 and body["retention_ms"] == 3600000, f"describe: {body}")

records = [{"key": "user-7", "value": f"event {i}", "headers": {"source": "python"}} for i in range(20)]
status, body, _ = call("POST", "/topics/py/messages", {"records": records})
expect(status == 200 and len(body["results"]) == 20, f"publish batch: {status} {body}")
partition = body["results"][0]["partition"]
expect(all(r["partition"] == partition for r in body["results"]), "a keyed batch stays on one partition")
offsets = [r["offset"] for r in body["results"]]
expect(offsets == list(range(offsets[0], offsets[0] + 20)), f"dense offsets: {offsets}")

status, body, _ = call("GET", f"/topics/py/partitions/{partition}/messages?offset=0&max=100")
expect(status == 200, f"read: {status} {body}")
values = [r["value"] for r in body["records"]]
expect(values == [f"event {i}" for i in range(20)], f"read back in order: {values}")
expect(body["records"][0]["headers"] == {"source": "python"}, "headers survive")
expect(body["next_offset"] == 20, f"next_offset: {body['next_offset']}")

status, body, _ = call("POST", "/publish", {"topic": "py", "payload": "legacy", "id": "abc", "ttl": 30})
expect(status == 200 and body["status"] == "published" and body["id"], f"compat publish: {body}")
status, body, _ = call("GET", "/status")
expect(status == 200 and body["status"] == "running", f"status: {body}")

status, body, _ = call("POST", "/topics/missing/messages", {"value": "x"})
expect(status == 404 and body["error"]["code"] == "UNKNOWN_TOPIC", f"unknown topic: {status} {body}")
status, body, _ = call("POST", "/topics/py/messages", {"value": "x", "acks": "maybe"})
expect(status == 400 and "acks" in body["error"]["message"], f"bad acks: {status} {body}")
status, body, _ = call("GET", "/topics/py/partitions/0/messages?offset=-1")
expect(status == 400, f"bad offset: {status} {body}")

status, body, _ = call("DELETE", "/topics/py")
expect(status == 200, f"delete: {status} {body}")
print("ok: python http client")
