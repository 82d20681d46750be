package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
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
		return ""
	}
	user, pass, ok := r.BasicAuth()
	// Both compared, always: the time says nothing of which was wrong.
	if ok && equal([]byte(user), []byte(a.User)) && equal([]byte(pass), a.Secret) {
		return "user " + user
	}
	return ""
}

func (a *Auth) challenge(w http.ResponseWriter) {
	if a.User == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gear"`)
	} else {
		w.Header().Set("WWW-Authenticate", `Basic realm="gear", charset="UTF-8"`)
	}
	writeError(w, http.StatusUnauthorized, "authentication required")
}
