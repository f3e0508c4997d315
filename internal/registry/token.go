package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	jose "github.com/go-jose/go-jose/v4"
)

// tokenTTL is how long an issued token is valid.
const tokenTTL = 5 * time.Minute

// tokenServer issues registry bearer tokens (the Docker token protocol) signed with a key made
// at start; the registry trusts that key through a JWKS file.
type tokenServer struct {
	issuer string
	users  map[string]string
	public map[string]bool
	signer jose.Signer
}

// newTokenServer makes a signing key, writes its public half as a JWKS file under dir and
// returns the server and that file's path.
func newTokenServer(dir, base string, users map[string]string, public map[string]bool) (*tokenServer, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, "", err
	}
	kid := randomHex(8)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, "", fmt.Errorf("registry: token signer: %w", err)
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}}}
	raw, err := json.Marshal(set)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return nil, "", err
	}
	return &tokenServer{issuer: base + "/token", users: users, public: public, signer: signer}, path, nil
}

// ServeHTTP answers GET (basic auth, scope in the query) and POST (OAuth2 password grant, as
// containerd sends it) token requests.
func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var user, pass string
	var hasCreds bool
	var scopes []string
	var service string
	switch r.Method {
	case http.MethodGet:
		user, pass, hasCreds = r.BasicAuth()
		scopes = r.URL.Query()["scope"]
		service = r.URL.Query().Get("service")
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		if r.PostForm.Get("grant_type") != "password" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		user, pass = r.PostForm.Get("username"), r.PostForm.Get("password")
		hasCreds = user != ""
		scopes = r.PostForm["scope"]
		service = r.PostForm.Get("service")
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if service != "" && service != Service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	if hasCreds {
		want, ok := s.users[user]
		if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(pass)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="pouch-registry-token"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`, http.StatusUnauthorized)
			return
		}
	}
	var access []*token.ResourceActions
	for _, sc := range scopes {
		for _, one := range strings.Fields(sc) {
			if ra := s.grant(one, hasCreds); ra != nil {
				access = append(access, ra)
			}
		}
	}
	now := time.Now()
	claims := token.ClaimSet{
		Issuer: s.issuer, Subject: user, Audience: token.AudienceList{Service},
		Expiration: now.Add(tokenTTL).Unix(), NotBefore: now.Add(-time.Minute).Unix(), IssuedAt: now.Unix(),
		JWTID: randomHex(12), Access: access,
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": tok, "access_token": tok, "expires_in": int(tokenTTL.Seconds()), "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// grant decides what one requested scope ("repository:name:pull,push") yields: everything
// asked for to a known user, pull on public repositories to anyone, nothing otherwise.
func (s *tokenServer) grant(scope string, authenticated bool) *token.ResourceActions {
	parts := strings.Split(scope, ":")
	if len(parts) < 3 {
		return nil
	}
	typ, actions := parts[0], strings.Split(parts[len(parts)-1], ",")
	name := strings.Join(parts[1:len(parts)-1], ":")
	if typ != "repository" {
		return nil
	}
	var granted []string
	for _, a := range actions {
		if authenticated || (a == "pull" && s.public[name]) {
			granted = append(granted, a)
		}
	}
	if len(granted) == 0 {
		return nil
	}
	slices.Sort(granted)
	return &token.ResourceActions{Type: typ, Name: name, Actions: slices.Compact(granted)}
}

func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}
