// Package ingest holds the profile model (its canonical encoding and
// 64-bit digest), the input parsers (JSONL, TSV) and the write pipeline:
// shard writers that upsert Postgres and record the derived writes they
// owe in an outbox, derived writers for Redis, Elasticsearch and the
// archive, and the catch-up log that replays what failed. Store adapters
// live in ingest/{postgres,redis,elasticsearch}, the archive in
// ingest/archive, the read path in ingest/lookup and dataset versions in
// ingest/dataset.
package ingest
