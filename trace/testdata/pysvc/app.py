"""The Python sample service: GET /quote is called by the Go service and
calls the Scala service. GET /fanout runs ten parallel child spans (in
threads, started and ended a little apart) and then a final one, and
answers its trace ID: the critical-path test's fan-out. Instrumented with the OpenTelemetry Python SDK,
exporting OTLP/HTTP protobuf to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (triad).

Usage: python app.py PORT SCALA_URL
"""

import json
import signal
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

provider = TracerProvider(resource=Resource.create({"service.name": "quote-py"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(), schedule_delay_millis=200))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("triad.testdata.pysvc")

SCALA_URL = ""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):  # quiet
        pass

    def fanout(self):
        with tracer.start_as_current_span("GET /fanout", context=extract(self.headers), kind=SpanKind.SERVER) as span:
            parent = trace.set_span_in_context(span)

            def work(i):
                with tracer.start_as_current_span(f"parallel {i}", context=parent):
                    time.sleep(0.030 + 0.003 * i)

            threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
            for th in threads:
                th.start()
                time.sleep(0.002)
            for th in threads:
                th.join()
            with tracer.start_as_current_span("final"):
                time.sleep(0.010)
            body = json.dumps({"trace_id": format(span.get_span_context().trace_id, "032x")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/fanout"):
            self.fanout()
            return
        if not self.path.startswith("/quote"):
            self.send_error(404)
            return
        ctx = extract(self.headers)  # case-insensitive, as HTTP headers are
        with tracer.start_as_current_span("GET /quote", context=ctx, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", "GET")
            span.set_attribute("url.path", "/quote")
            with tracer.start_as_current_span("validate basket"):
                time.sleep(0.005)
            with tracer.start_as_current_span("GET price", kind=SpanKind.CLIENT) as client:
                headers = {}
                inject(headers)
                req = urllib.request.Request(SCALA_URL + "/price", headers=headers)
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        price = json.loads(resp.read())
                        client.set_attribute("http.response.status_code", resp.status)
                except Exception as e:  # the trace shows the failure
                    client.set_status(Status(StatusCode.ERROR, str(e)))
                    price = {"error": str(e)}
            body = json.dumps({"price": price}).encode()
            span.set_attribute("http.response.status_code", 200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    global SCALA_URL
    port, SCALA_URL = int(sys.argv[1]), sys.argv[2].rstrip("/")
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # flush spans on stop
    print(f"quote-py listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        provider.shutdown()


if __name__ == "__main__":
    main()
