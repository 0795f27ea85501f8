package elasticsearch

import (
	"io"
	"strings"
	"testing"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"github.com/stretchr/testify/require"
)

// TestErrorBodyKeepsNoValues: Elasticsearch's reasons quote documents'
// values (personal data); error messages keep the type and the field.
func TestErrorBodyKeepsNoValues(t *testing.T) {
	body := func(s string) *esapi.Response {
		return &esapi.Response{StatusCode: 400, Body: io.NopCloser(strings.NewReader(s))}
	}
	got := ErrorBody(body(`{"error":{"root_cause":[],"type":"document_parsing_exception","reason":"[1:40] failed to parse field [props.email] of type [flattened] in document with id '7'. Preview of field's value: 'alice@example.org'"},"status":400}`))
	require.Equal(t, "document_parsing_exception in field props.email", got)
	require.NotContains(t, got, "alice")
	require.Equal(t, "resource_already_exists_exception", ErrorBody(body(`{"error":{"type":"resource_already_exists_exception","reason":"index [x] already exists"},"status":400}`)))
	require.Equal(t, "<html> bad gateway", ErrorBody(body("<html>\nbad gateway")))
	require.Len(t, ErrorBody(body(strings.Repeat("x", 5000))), 200)
}
