#!/usr/bin/env python3
"""A real OTLP/HTTP trace receiver on loopback, for Warren's tracing tests.

POST /v1/traces (application/x-protobuf or application/json) is decoded with the
opentelemetry-proto package and every span is appended to --out as one JSON line:
{"trace_id", "span_id", "parent_span_id", "name", "kind", "status", "service", "attributes"}.
Run it through scripts/otlp-receiver, which provides the virtualenv.
"""
import argparse
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    v = getattr(any_value, kind)
    if kind in ("array_value", "kvlist_value"):
        return json_format.MessageToDict(v)
    return v


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True, help="0: any free port (see --port-file)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--port-file", help="written with the bound port once the receiver listens")
    args = parser.parse_args()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path != "/v1/traces":
                self.send_response(404)
                self.end_headers()
                return
            request = ExportTraceServiceRequest()
            if "json" in (self.headers.get("Content-Type") or ""):
                json_format.Parse(body, request)
            else:
                request.ParseFromString(body)
            lines = []
            for resource_spans in request.resource_spans:
                service = next((value(a.value) for a in resource_spans.resource.attributes if a.key == "service.name"), None)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        lines.append(json.dumps({
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": KINDS.get(span.kind, str(span.kind)),
                            "status": span.status.code,
                            "service": service,
                            "attributes": {a.key: value(a.value) for a in span.attributes},
                        }))
            with lock, open(args.out, "a") as out:
                for line in lines:
                    out.write(line + "\n")
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    port = server.server_address[1]
    if args.port_file:
        # Written whole under another name, then renamed: a reader never sees half a number.
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"otlp receiver on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
