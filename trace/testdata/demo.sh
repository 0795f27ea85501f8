#!/usr/bin/env bash
# Runs the three sample services for `make demo`, exporting spans to a
# triad on 127.0.0.1:4318, and calls the Go service every few seconds so
# the dashboard has fresh cross-language traces. Stops them on exit.
# Built first by `make trace-services`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-http://127.0.0.1:4318/v1/traces}"
every="${DEMO_TRACE_EVERY:-5}"
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 0' INT TERM # runs the EXIT trap

cp="$here/scalasvc/target/price-scala-1.0.0.jar"
for j in "$here"/scalasvc/target/lib/*.jar; do cp="$cp:$j"; done
java -Xmx128m -cp "$cp" triad.Price 18082 >/dev/null &
pids+=($!)
"$here/pysvc/.venv/bin/python" "$here/pysvc/app.py" 18081 http://127.0.0.1:18082 >/dev/null &
pids+=($!)
"$root/bin/gosvc" -listen 127.0.0.1:18080 -quote http://127.0.0.1:18081 >/dev/null &
pids+=($!)
echo "demo services: checkout-go :18080 → quote-py :18081 → price-scala :18082 (a trace every ${every}s)"
sleep 5
while true; do
  curl -fsS http://127.0.0.1:18080/checkout >/dev/null 2>&1 || true
  sleep "$every"
done
