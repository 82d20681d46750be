package httpapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// web holds the dashboard: one page and its script and style, no build step, nothing fetched from
// elsewhere. The page reads the JSON API of the same origin, so it needs no handler of its own.
//
//go:embed web
var web embed.FS

// dashboardCSP allows the page its own script, style and API and nothing else: no inline script or
// style, no other origin, no frame around it, no plugin, no <base> to redirect its relative URLs.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, with its type and an ETag (the page is revalidated on every load:
// Cache-Control no-cache, so a new server never runs an old script).
type asset struct {
	data  []byte
	ctype string
	etag  string
}

// registerDashboard serves the dashboard: GET / is the page, GET /assets/NAME its script and style.
// A path not embedded is a 404; there is no directory listing.
func registerDashboard(mux *http.ServeMux) {
	assets := map[string]asset{}
	err := fs.WalkDir(web, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := web.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		assets[path.Base(p)] = asset{data: b, ctype: mime.TypeByExtension(path.Ext(p)), etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("httpapi: the embedded dashboard: " + err.Error()) // compiled in: cannot happen at run time
	}
	mux.Handle("GET /{$}", serveAsset(assets["index.html"]))
	mux.HandleFunc("GET /assets/{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[r.PathValue("name")]
		if !ok || r.PathValue("name") == "index.html" {
			http.NotFound(w, r)
			return
		}
		serveAsset(a).ServeHTTP(w, r)
	})
}

func serveAsset(a asset) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
	})
}
