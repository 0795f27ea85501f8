// Package ingest will hold the profile model and the write pipeline: parsing,
// sharded writers to Postgres, Redis and Elasticsearch, the ChunkedWriter
// archive, dataset versions and the read path's cache layers (issues 3 and 4).
// It holds no code yet; the directory exists so the layout is fixed from the start.
package ingest
