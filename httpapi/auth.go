package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Auth is who may use the HTTP listener: a bearer token, or a basic-auth user and password.
type Auth struct {
	User   string // empty: a bearer token; else basic auth with this user
	Secret []byte // the token or password; never logged
}

// ParseAuth reads --http-auth: "token" (a bearer token) or "user:NAME" (basic auth as NAME), the
// secret coming from elsewhere (a file or the environment).
func ParseAuth(kind string, secret []byte) (*Auth, error) {
	secret = []byte(strings.TrimRight(string(secret), "\r\n"))
	if len(secret) == 0 {
		return nil, errors.New("--http-auth: the secret is empty (--http-auth-secret-file or GEAR_HTTP_SECRET)")
	}
	switch {
	case kind == "token":
		return &Auth{Secret: secret}, nil
	case strings.HasPrefix(kind, "user:") && len(kind) > len("user:"):
		return &Auth{User: strings.TrimPrefix(kind, "user:"), Secret: secret}, nil
	}
	return nil, errors.New(`--http-auth must be "token" or "user:NAME"`)
}

// equal compares in constant time, whatever the lengths (hashes of equal length are compared).
func equal(a, b []byte) bool {
	ha, hb := sha256.Sum256(a), sha256.Sum256(b)
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// who checks a request's credentials and names its sender for the log ("" = refused).
func (a *Auth) who(r *http.Request) string {
	if a.User == "" {
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && equal([]byte(strings.TrimSpace(token)), a.Secret) {
			return "token"
		}
		if c, err := r.Cookie(sessionCookie); err == nil && equal([]byte(c.Value), []byte(a.session())) {
			return "token (dashboard)"
		}
		return ""
	}
	user, pass, ok := r.BasicAuth()
	// Both compared, always: the time says nothing of which was wrong.
	if ok && equal([]byte(user), []byte(a.User)) && equal([]byte(pass), a.Secret) {
		return "user " + user
	}
	return ""
}

// A browser cannot send a bearer token by itself, so with --http-auth token the dashboard signs in
// once at /login: the token, posted from that page, buys a session cookie (HttpOnly, SameSite=Strict)
// whose value is derived from the token, so the cookie never holds the token itself and changing
// the token ends every session.
const sessionCookie = "gear_session"

func (a *Auth) session() string {
	mac := hmac.New(sha256.New, a.Secret)
	mac.Write([]byte("gear dashboard session v1"))
	return hex.EncodeToString(mac.Sum(nil))
}

const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Gear: sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 24rem; margin: 4rem auto">
<h1>Gear</h1>
<p>%s</p>
<form method="post" action="/login">
<label>Token <input type="password" name="token" id="token" autocomplete="current-password" required autofocus></label>
<button type="submit" id="sign-in">Sign in</button>
</form></body></html>
`

// login serves the sign-in page (GET) and checks the token posted from it (POST).
func (h *HTTP) login(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	a := h.opts.Auth
	if a == nil || a.User != "" {
		http.Redirect(w, r, "/", http.StatusSeeOther) // nothing to sign in to here
		return
	}
	if r.Method == http.MethodGet {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, loginPage, "This server's HTTP interface needs its token.")
		return
	}
	if !equal([]byte(strings.TrimSpace(r.PostFormValue("token"))), a.Secret) {
		h.log.Warn("http sign-in refused", "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, loginPage, "That token is not this server's.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: a.session(), Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	h.log.Info("http sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// logout ends the browser's session.
func (h *HTTP) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (a *Auth) challenge(w http.ResponseWriter) {
	if a.User == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gear"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="gear", charset="UTF-8"`)
	}
	writeError(w, http.StatusUnauthorized, "authentication required")
}
