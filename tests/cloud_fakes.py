"""Loopback fakes of the few Vast.ai and Kaggle endpoints `shakyo cloud` uses.

Both are standard-library HTTP servers on 127.0.0.1 (an ephemeral port), started
by the tests, recording every request (method, path, headers, body). The real
clients are pointed at them through their own settings:

- vastai: ``VAST_URL=http://127.0.0.1:PORT`` (the SDK and the CLI read it).
- kaggle: ``KAGGLE_API_ENVIRONMENT=LOCALHOST`` makes the CLI call
  ``http://localhost/api/v1/<Service>/<Method>`` (port 80, fixed in kagglesdk); the
  standard ``HTTP_PROXY=http://127.0.0.1:PORT`` (honoured by requests) delivers those
  requests to the fake, which therefore sees absolute URLs. Nothing binds port 80.

``fail_next[key] = n`` answers the next n requests of that key with HTTP 503 (a
transient error) so the retry paths run. The fakes check the credentials they
must carry and answer 401 otherwise.
"""

from __future__ import annotations

import base64
import io
import json
import secrets
import threading
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


class _Server:
    """An HTTP server in a daemon thread; subclasses implement handle(req) -> (status, headers, body)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_next: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                body = self._body()
                req = Request(self.command, self.path, dict(self.headers), body)
                with outer.lock:
                    outer.requests.append(req)
                try:
                    status, headers, out = outer.dispatch(req)
                except Exception as e:  # a bug in the fake: make it visible in the test
                    status, headers, out = 500, {}, f"fake error: {e!r}".encode()
                req.status = status
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            do_GET = do_POST = do_PUT = do_DELETE = _any

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def dispatch(self, req: Request) -> tuple[int, dict, bytes]:
        key = self.key_of(req)
        with self.lock:
            if self.fail_next.get(key, 0) > 0:
                self.fail_next[key] -= 1
                return 503, {"Content-Type": "application/json"}, b'{"error": "try again"}'
        return self.handle(req)

    def key_of(self, req: Request) -> str:
        return req.path

    def handle(self, req: Request) -> tuple[int, dict, bytes]:
        raise NotImplementedError


def _json(status: int, obj: Any) -> tuple[int, dict, bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode()


class FakeVast(_Server):
    """Offers, instances, logs, destroy. Keys: the user's, or an instance's CONTAINER_API_KEY."""

    def __init__(self, user_key: str, offers: list[dict]) -> None:
        super().__init__()
        self.user_key = user_key
        self.offers = offers
        self.instances: dict[int, dict] = {}
        self.logs: dict[int, str] = {}
        self._next_id = 9001

    def key_of(self, req: Request) -> str:
        path = urllib.parse.urlsplit(req.path).path
        if path.startswith("/api/v0/instances/request_logs/"):
            return "logs"
        if req.method == "DELETE":
            return "destroy"
        if path.startswith("/api/v0/asks/"):
            return "create"
        if path == "/api/v0/bundles/":
            return "search"
        return path

    def _who(self, req: Request) -> str | int | None:
        auth = req.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        if token == self.user_key:
            return "user"
        for iid, inst in self.instances.items():
            if token == inst["container_api_key"]:
                return iid
        return None

    def handle(self, req: Request) -> tuple[int, dict, bytes]:
        parts = urllib.parse.urlsplit(req.path)
        path = parts.path
        if path == "/api/v0/gpu_names/unique/":
            return _json(200, {"gpu_names": sorted({o["gpu_name"] for o in self.offers})})
        if path.startswith("/logs/"):  # the signed log URL: no auth, as on S3
            iid = int(path.split("/")[2])
            return 200, {"Content-Type": "text/plain"}, self.logs.get(iid, "").encode()
        who = self._who(req)
        if who is None:
            return _json(401, {"error": "invalid api key"})
        if path == "/api/v0/bundles/" and req.method == "POST" and who == "user":
            return _json(200, {"offers": [o for o in self.offers if _matches(o, req.json())]})
        if path.startswith("/api/v0/asks/") and req.method == "PUT" and who == "user":
            offer_id = int(path.split("/")[4])
            offer = next((o for o in self.offers if o["id"] == offer_id), None)
            if offer is None:
                return _json(404, {"error": "no such offer"})
            body = req.json()
            iid = self._next_id
            self._next_id += 1
            self.instances[iid] = {
                "id": iid, "offer": offer, "image": body["image"], "disk": body["disk"],
                "env": body["env"], "onstart": body["onstart"], "label": body.get("label"),
                "runtype": body.get("runtype"), "status": "loading", "start_date": time.time(),
                "container_api_key": "ck-" + secrets.token_hex(16),
            }  # fmt: skip
            return _json(200, {"success": True, "new_contract": iid})
        if path.startswith("/api/v0/instances/request_logs/") and req.method == "PUT":
            iid = int(path.split("/")[5])
            if who not in ("user", iid):
                return _json(403, {"error": "not yours"})
            return _json(200, {"result_url": f"{self.url}/logs/{iid}/{secrets.token_hex(4)}.log"})
        if path.startswith("/api/v0/instances/") and path.count("/") == 5:
            iid = int(path.split("/")[4])
            inst = self.instances.get(iid)
            if who not in ("user", iid):
                return _json(403, {"error": "not yours"})
            if req.method == "DELETE":
                if inst is None or inst["status"] == "destroyed":
                    return _json(404, {"success": False, "msg": "no such instance"})
                inst["status"] = "destroyed"
                inst["destroyed_by"] = "user" if who == "user" else "instance"
                return _json(200, {"success": True})
            if req.method == "GET":
                if inst is None or inst["status"] == "destroyed":
                    return _json(200, {"instances": None})
                o = inst["offer"]
                row = {
                    "id": iid, "actual_status": inst["status"], "cur_state": "running",
                    "gpu_name": o["gpu_name"], "num_gpus": o["num_gpus"], "dph_total": o["dph_total"],
                    "start_date": inst["start_date"], "label": inst["label"], "status_msg": "",
                    # The real record carries the environment, keys included: shakyo must drop it.
                    "extra_env": [[k, v] for k, v in inst["env"].items()],
                }  # fmt: skip
                return _json(200, {"instances": row})
        return _json(404, {"error": f"fake vast has no {req.method} {path}"})


def _matches(offer: dict, q: dict) -> bool:
    for k, cond in q.items():
        if not isinstance(cond, dict) or k not in offer:
            continue
        v = offer[k]
        for op, want in cond.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(want, str):
                want = float(want)  # vastai sends numbers as strings: "dph_total": {"lte": "0.6"}
            if op == "eq" and v != want and str(v).replace(" ", "_") != str(want).replace(" ", "_"):
                return False
            if (op == "lte" and v > want) or (op == "gte" and v < want):
                return False
            if (op == "lt" and v >= want) or (op == "gt" and v <= want):
                return False
    return True


def zip_files(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in sorted(files.items()):
            # A fixed date: the same files give the same bytes (the plan's sha256 pins them).
            z.writestr(zipfile.ZipInfo(name, date_time=(2023, 5, 10, 0, 0, 0)), data)
    return buf.getvalue()


@dataclass
class Dataset:
    ref: str
    title: str
    license: str
    private: bool
    versions: list[dict] = field(default_factory=list)  # {"notes", "files": {name: bytes}}


class FakeKaggle(_Server):
    """Datasets (status, download, create, version), blob uploads, competitions, kernels."""

    def __init__(self, username: str, key: str) -> None:
        super().__init__()
        self.username, self.key = username, key
        self.datasets: dict[str, Dataset] = {}
        self.competitions: dict[str, bytes] = {}  # name -> zip
        self.blobs: dict[str, dict] = {}  # token -> {"name", "data"}
        self.kernels: dict[str, dict] = {}
        self.kernel_outputs: dict[str, dict[str, bytes]] = {}
        self.status_polls_until_complete = 1

    def add_dataset(self, ref: str, files: dict[str, bytes], title: str = "a dataset") -> None:
        self.datasets[ref] = Dataset(ref, title, "CC0-1.0", True, [{"notes": "", "files": files}])

    def key_of(self, req: Request) -> str:
        path = urllib.parse.urlsplit(req.path).path
        return path.rsplit("/", 1)[-1] if "/api/v1/" in path else path.split("/")[2]

    def _authorized(self, req: Request) -> bool:
        want = "Basic " + base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return req.headers.get("Authorization") == want

    def handle(self, req: Request) -> tuple[int, dict, bytes]:
        parts = urllib.parse.urlsplit(req.path)
        if parts.hostname != "localhost":
            return _json(
                400,
                {"error": f"the fake expects http://localhost/... via HTTP_PROXY, got {req.path}"},
            )
        path = parts.path
        if path.startswith("/blobs/"):
            return self._blob(req, path)
        if not path.startswith("/api/v1/"):
            return _json(404, {"code": 404, "message": f"no {path}"})
        if not self._authorized(req):
            return _json(401, {"code": 401, "message": "Unauthenticated"})
        service, method = path[len("/api/v1/") :].split("/")
        body = req.json()
        fn = getattr(self, f"_{method}", None)
        if fn is None:
            return _json(404, {"code": 404, "message": f"fake kaggle has no {service}/{method}"})
        return fn(body)

    # --- datasets --------------------------------------------------------------
    def _ref(self, body: dict) -> str:
        return f"{body.get('ownerSlug')}/{body.get('datasetSlug')}"

    def _GetDatasetStatus(self, body):
        if self._ref(body) not in self.datasets:
            return _json(404, {"code": 404, "message": "Not found"})
        return _json(200, {"status": "ready"})

    def _GetDatasetMetadata(self, body):
        d = self.datasets.get(self._ref(body))
        if d is None:
            return _json(404, {"code": 404, "message": "Not found"})
        return _json(200, {"info": {"licenses": [{"name": d.license}], "title": d.title}})

    def _DownloadDataset(self, body):
        d = self.datasets.get(self._ref(body))
        if d is None:
            return _json(404, {"code": 404, "message": "Not found"})
        n = body.get("datasetVersionNumber") or len(d.versions)
        return 302, {"Location": f"http://localhost/blobs/dataset/{d.ref}/{n}"}, b""

    def _StartBlobUpload(self, body):
        token = "blob-" + secrets.token_hex(6)
        self.blobs[token] = {"name": body["name"], "data": None}
        return _json(200, {"token": token, "createUrl": f"http://localhost/blobs/upload/{token}"})

    def _files_of(self, files: list[dict]) -> dict[str, bytes] | None:
        out = {}
        for f in files or []:
            blob = self.blobs.get(f.get("token"))
            if blob is None or blob["data"] is None:
                return None
            out[blob["name"]] = blob["data"]
        return out

    def _CreateDataset(self, body):
        ref = f"{body['ownerSlug']}/{body['slug']}"
        if ref in self.datasets:
            return _json(200, {"status": "error", "error": "slug already in use"})
        files = self._files_of(body.get("files"))
        if files is None:
            return _json(200, {"status": "error", "error": "unknown or incomplete upload token"})
        self.datasets[ref] = Dataset(ref, body["title"], body.get("licenseName", ""), body.get("isPrivate", False),
                                     [{"notes": "created", "files": files}])  # fmt: skip
        return _json(
            200, {"status": "ok", "ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}"}
        )

    def _CreateDatasetVersion(self, body):
        ref = self._ref(body)
        d = self.datasets.get(ref)
        if d is None:
            return _json(404, {"code": 404, "message": "Not found"})
        files = self._files_of(body.get("body", {}).get("files"))
        if files is None:
            return _json(200, {"status": "error", "error": "unknown or incomplete upload token"})
        d.versions.append({"notes": body["body"].get("versionNotes", ""), "files": files})
        return _json(
            200, {"status": "ok", "ref": ref, "url": f"https://www.kaggle.com/datasets/{ref}"}
        )

    # --- competitions ----------------------------------------------------------
    def _DownloadDataFiles(self, body):
        name = body.get("competitionName")
        if name not in self.competitions:
            return _json(404, {"code": 404, "message": "Not found"})
        return 302, {"Location": f"http://localhost/blobs/competition/{name}.zip"}, b""

    # --- kernels ---------------------------------------------------------------
    def _SaveKernel(self, body):
        ref = f"{self.username}/{body['slug'].split('/')[-1]}"
        k = self.kernels.setdefault(ref, {"versions": [], "polls": 0})
        k["versions"].append(body)
        k["polls"] = 0
        return _json(200, {"ref": f"/code/{ref}", "url": f"https://www.kaggle.com/code/{ref}",
                           "versionNumber": len(k["versions"])})  # fmt: skip

    def _GetKernelSessionStatus(self, body):
        ref = f"{body['userName']}/{body['kernelSlug']}"
        k = self.kernels.get(ref)
        if k is None:
            return _json(404, {"code": 404, "message": "Not found"})
        k["polls"] += 1
        done = k["polls"] > self.status_polls_until_complete
        return _json(200, {"status": "COMPLETE" if done else "RUNNING"})

    def _ListKernelSessionOutput(self, body):
        ref = f"{body['userName']}/{body['kernelSlug']}"
        outs = self.kernel_outputs.get(ref, {})
        files = [
            {"fileName": n, "url": f"http://localhost/blobs/kernel/{ref}/{n}"} for n in sorted(outs)
        ]
        return _json(200, {"files": files, "log": "[fake kaggle] the notebook ran\n"})

    # --- blobs (signed URLs: no auth) --------------------------------------------
    def _blob(self, req: Request, path: str) -> tuple[int, dict, bytes]:
        bits = path.split("/")
        if bits[2] == "upload" and req.method == "PUT":
            blob = self.blobs.get(bits[3])
            if blob is None:
                return 404, {}, b""
            crange = req.headers.get("Content-Range", "")
            if crange.startswith("bytes */"):  # a resumable upload asking how far it got
                total = int(crange.split("/")[1])
                if blob["data"] is not None and len(blob["data"]) == total:
                    return 200, {"Content-Type": "application/json"}, b"{}"
                return 308, {}, b""  # nothing kept: start again from byte 0
            blob["data"] = req.body
            return 200, {"Content-Type": "application/json"}, b"{}"
        if bits[2] == "dataset":
            d = self.datasets.get(f"{bits[3]}/{bits[4]}")
            if d is None:
                return 404, {}, b""
            data = zip_files(d.versions[int(bits[5]) - 1]["files"])
            return 200, {"Content-Type": "application/zip"}, data
        if bits[2] == "competition":
            data = self.competitions.get(bits[3][: -len(".zip")])
            return (200, {"Content-Type": "application/zip"}, data) if data else (404, {}, b"")
        if bits[2] == "kernel":
            data = self.kernel_outputs.get(f"{bits[3]}/{bits[4]}", {}).get(bits[5])
            return (
                (200, {"Content-Type": "application/octet-stream"}, data)
                if data
                else (404, {}, b"")
            )
        return 404, {}, b""
