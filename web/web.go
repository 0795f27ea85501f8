// Package web is triad's dashboard: static pages and scripts embedded in the
// binary with go:embed. Nothing is fetched from the internet and nothing needs
// Node to build.
package web

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gin-gonic/gin"
)

//go:embed static
var static embed.FS

// Mount serves the dashboard at / and its assets under /ui/.
func Mount(e *gin.Engine) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServer(http.FS(sub))
	secure := func(c *gin.Context) {
		// Everything the dashboard needs comes from this server.
		c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
		c.Header("X-Content-Type-Options", "nosniff")
		c.Header("Referrer-Policy", "no-referrer")
	}
	e.GET("/", secure, func(c *gin.Context) { c.FileFromFS("/", http.FS(sub)) })
	e.GET("/ui/*file", secure, func(c *gin.Context) {
		c.Request.URL.Path = c.Param("file")
		files.ServeHTTP(c.Writer, c.Request)
	})
}

// Asset returns an embedded dashboard file by name (e.g. "trace.js"), for
// exports that carry the dashboard's code with them.
func Asset(name string) ([]byte, error) { return static.ReadFile("static/" + name) }

// Page is one page of the dashboard's navigation.
type Page struct {
	Href string `json:"href"`
	Name string `json:"name"`
	// Role is the least role that sees the page ("" for every role).
	Role string `json:"role,omitempty"`
}

// Pages is the dashboard's navigation, in order: the API serves it
// (GET /api/v1/meta), so pages hold no copy of it.
var Pages = []Page{
	{Href: "/", Name: "Overview"}, {Href: "/ui/repairs.html", Name: "Repairs"}, {Href: "/ui/plans.html", Name: "Plans"},
	{Href: "/ui/check.html", Name: "Check"}, {Href: "/ui/sweeps.html", Name: "Sweeps"}, {Href: "/ui/trace.html", Name: "Traces"},
	{Href: "/ui/alerts.html", Name: "Alerts"}, {Href: "/ui/tokens.html", Name: "Tokens", Role: "admin"},
}
