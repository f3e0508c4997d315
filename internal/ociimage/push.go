package ociimage

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pouch-p2p/pouch/internal/httpx"
)

// Push uploads the image to registryURL (http://host:port) as repo:tag over the OCI
// distribution API: each blob the registry lacks with a monolithic POST+PUT upload, then the
// manifest. user and pass, when set, answer a basic-auth challenge or buy a bearer token from
// the registry's token server.
func (img *Image) Push(ctx context.Context, registryURL, repo, tag, user, pass string) error {
	p := newPusher(registryURL, repo, user, pass)
	for _, b := range img.Blobs() {
		if err := p.blob(ctx, b); err != nil {
			return err
		}
	}
	return p.manifest(ctx, tag, img.Manifest)
}

// PushIndex pushes the image by digest and then its Index as repo:tag.
func (img *Image) PushIndex(ctx context.Context, registryURL, repo, tag, user, pass string) error {
	if err := img.Push(ctx, registryURL, repo, img.Manifest.Digest.String(), user, pass); err != nil {
		return err
	}
	return newPusher(registryURL, repo, user, pass).manifest(ctx, tag, img.Index())
}

type pusher struct {
	base, repo  string
	user, pass  string
	client      *http.Client
	auth        string // Authorization header once a challenge was answered
	triedTokens bool
}

func newPusher(base, repo, user, pass string) *pusher {
	return &pusher{base: strings.TrimSuffix(base, "/"), repo: repo, user: user, pass: pass,
		client: &http.Client{Timeout: 5 * time.Minute}}
}

// do sends a request, answering one auth challenge. body may be nil.
func (p *pusher) do(ctx context.Context, method, u string, header http.Header, body []byte) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		for k, v := range header {
			req.Header[k] = v
		}
		if p.auth != "" {
			req.Header.Set("Authorization", p.auth)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("ociimage: %s %s: %w", method, u, err)
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		if err := p.authorize(ctx, challenge); err != nil {
			return nil, err
		}
	}
}

// authorize answers a WWW-Authenticate challenge.
func (p *pusher) authorize(ctx context.Context, challenge string) error {
	scheme, params := httpx.ParseChallenge(challenge)
	switch strings.ToLower(scheme) {
	case "basic":
		if p.user == "" {
			return fmt.Errorf("ociimage: %s requires credentials", p.base)
		}
		p.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
		return nil
	case "bearer":
		realm := params["realm"]
		if realm == "" {
			return fmt.Errorf("ociimage: bearer challenge without realm: %q", challenge)
		}
		q := url.Values{}
		if s := params["service"]; s != "" {
			q.Set("service", s)
		}
		q.Set("scope", "repository:"+p.repo+":pull,push")
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		if p.user != "" {
			req.SetBasicAuth(p.user, p.pass)
		}
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("ociimage: token from %s: %w", realm, err)
		}
		defer drain(resp)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("ociimage: token server %s answered %s", realm, resp.Status)
		}
		var tok struct {
			Token       string `json:"token"`
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil {
			return fmt.Errorf("ociimage: token from %s: %w", realm, err)
		}
		t := tok.Token
		if t == "" {
			t = tok.AccessToken
		}
		p.auth = "Bearer " + t
		return nil
	}
	return fmt.Errorf("ociimage: unsupported auth challenge %q", challenge)
}

func (p *pusher) blob(ctx context.Context, b Blob) error {
	blobURL := fmt.Sprintf("%s/v2/%s/blobs/%s", p.base, p.repo, b.Digest)
	resp, err := p.do(ctx, http.MethodHead, blobURL, nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	resp, err = p.do(ctx, http.MethodPost, fmt.Sprintf("%s/v2/%s/blobs/uploads/", p.base, p.repo), nil, nil)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("ociimage: start upload of %s to %s: %s", b.Digest, p.repo, resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		return fmt.Errorf("ociimage: upload of %s: no Location: %w", b.Digest, err)
	}
	q := loc.Query()
	q.Set("digest", b.Digest.String())
	loc.RawQuery = q.Encode()
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	resp, err = p.do(ctx, http.MethodPut, loc.String(), h, b.Data)
	if err != nil {
		return err
	}
	drain(resp)
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("ociimage: upload of %s to %s: %s", b.Digest, p.repo, resp.Status)
	}
	return nil
}

func (p *pusher) manifest(ctx context.Context, ref string, m Blob) error {
	u := fmt.Sprintf("%s/v2/%s/manifests/%s", p.base, p.repo, ref)
	resp, err := p.do(ctx, http.MethodPut, u, http.Header{"Content-Type": {m.MediaType}}, m.Data)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusCreated {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("ociimage: put manifest %s:%s: %s %s", p.repo, ref, resp.Status, body)
	}
	return nil
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
}
