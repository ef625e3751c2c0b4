package tracker

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

// webFiles is the live page: HTML, CSS and JavaScript only, nothing loaded
// from elsewhere, so that it works in an air-gapped datacenter.
//
//go:embed web
var webFiles embed.FS

// pagePolicy lets the page load only its own files and talk only to its
// own tracker; no inline script can run, whatever a swarm's name holds.
const pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// page serves the live page at / and its files at /ui/.
func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	if u.Path == "/" {
		u.Path = "/index.html"
		h.Set("Cache-Control", "no-cache")
	} else {
		u.Path = strings.TrimPrefix(u.Path, "/ui")
	}
	if u.Path == "/index.html" {
		// FileServer redirects /index.html to /; serve the file itself.
		data, _ := webFiles.ReadFile("web/index.html")
		h.Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodHead {
			w.Write(data)
		}
		return
	}
	r2.URL = &u
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.FileServerFS(sub).ServeHTTP(w, r2)
}
