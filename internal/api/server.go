// Package api serves Lethe's HTTP JSON API under /v1, plus the health probes
// and Prometheus metrics. It is the only place where domain error codes
// become HTTP statuses (RFC 9457 problem+json bodies).
//
// Every route declares the one permission it needs (see lethe.Permission);
// the middleware authenticates the bearer API key, checks the permission
// against the caller's role, applies the per-principal rate limit, bounds the
// request body and tags the request with an ID. Access logs name the route
// pattern and the key ID, never a path, query or body, since those can hold
// personal data.
package api

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/lethe-privacy/lethe"
)

// Options configure a Server. Zero values take the defaults noted.
type Options struct {
	Keys     lethe.APIKeyStore // required
	Vault    lethe.Vault       // required
	Audit    lethe.AuditTrail  // required
	Consent  lethe.Consent     // required
	Requests Requests          // data-subject requests; nil leaves their routes out
	// SelfRateLimit is how many self-service calls per minute one client
	// address may make; default 10.
	SelfRateLimit int
	// SelfContactLimit is how many self-service requests per hour may name
	// one contact address, whoever asks; default 5. It keeps Lethe from
	// being used to flood someone's mailbox with codes.
	SelfContactLimit int
	Ready            map[string]lethe.Pinger // dependencies /readyz checks, by name
	Logger           *slog.Logger            // default: discard
	Now              lethe.Now               // default: time.Now
	MaxBodyBytes     int64                   // default: 1 MiB
	RateLimit        float64                 // requests per second per principal; default 1000
	RateBurst        int                     // default: twice RateLimit
}

// Server is the HTTP API. It is safe for concurrent use once built.
type Server struct {
	keys     lethe.APIKeyStore
	vault    lethe.Vault
	audit    lethe.AuditTrail
	consent  lethe.Consent
	requests Requests
	ready    map[string]lethe.Pinger
	log      *slog.Logger
	now      lethe.Now
	maxBody  int64
	limits   *limiter
	// selfLimits limits the self-service routes per client address, and
	// contactLimits the requests naming one contact address; both are
	// keyed by a salted hash (limitKey), so that neither address is held.
	selfLimits, contactLimits *limiter
	limitSalt                 []byte
	authn                     *keyCache
	metrics                   *metrics
	routes                    []Route
	handler                   http.Handler
	// closing is cancelled by CloseStreams, ending long-lived responses.
	closing context.Context
	close   context.CancelFunc
}

// New builds a Server.
func New(o Options) *Server {
	s := &Server{keys: o.Keys, vault: o.Vault, audit: o.Audit, consent: o.Consent, requests: o.Requests, ready: o.Ready, log: o.Logger, now: o.Now, maxBody: o.MaxBodyBytes}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxBody <= 0 {
		s.maxBody = 1 << 20
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 1000
	}
	if o.RateBurst <= 0 {
		o.RateBurst = int(2 * o.RateLimit)
	}
	s.closing, s.close = context.WithCancel(context.Background())
	s.limits = newLimiter(rate.Limit(o.RateLimit), o.RateBurst)
	if o.SelfRateLimit <= 0 {
		o.SelfRateLimit = 10
	}
	s.selfLimits = newLimiter(rate.Limit(float64(o.SelfRateLimit)/60), o.SelfRateLimit)
	if o.SelfContactLimit <= 0 {
		o.SelfContactLimit = 5
	}
	s.contactLimits = newLimiter(rate.Limit(float64(o.SelfContactLimit)/3600), o.SelfContactLimit)
	s.limitSalt = make([]byte, 32)
	rand.Read(s.limitSalt) // never returns an error
	s.authn = newKeyCache(keyCacheTTL, 10_000)
	s.metrics = newMetrics()
	s.routes = s.buildRoutes()
	s.handler = s.buildHandler()
	return s
}

// CloseStreams ends the long-lived responses (the consent stream), so
// that a graceful shutdown does not wait for them: register it with
// http.Server.RegisterOnShutdown.
func (s *Server) CloseStreams() { s.close() }

// Handler returns the root HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Routes returns every route the server answers, for documentation and the
// authorization matrix test.
func (s *Server) Routes() []Route { return append([]Route(nil), s.routes...) }

// Registry returns the Prometheus registry holding the server's metrics, so
// that other components can register theirs beside them.
func (s *Server) Registry() *prometheus.Registry { return s.metrics.registry }

// Route is one API operation. The route table is the single source for the
// mux, the permission checks and the OpenAPI document.
type Route struct {
	Method     string           // GET, POST, DELETE …
	Path       string           // net/http pattern path, e.g. /v1/keys/{id}
	Permission lethe.Permission // what the caller's role must hold; PermPublic for probes
	Summary    string           // one line for the OpenAPI document
	Request    any              // zero value of the JSON request body type, or nil
	Response   any              // zero value of the JSON response body type, or nil for no body
	Status     int              // success status
	Errors     []int            // error statuses besides the ones every route can return
	BodyLimit  int64            // a larger body limit than the server's, for a route whose requests are big by nature
	Gone       any              // zero value of the body of a 410 answer that extends the problem with members of its own, or nil

	handle func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) buildRoutes() []Route {
	routes := []Route{
		{Method: "GET", Path: "/healthz", Permission: lethe.PermPublic, Summary: "Liveness probe: the process serves requests", Response: healthResponse{}, Status: 200, handle: s.healthz},
		{Method: "GET", Path: "/readyz", Permission: lethe.PermPublic, Summary: "Readiness probe: the stores answer", Response: healthResponse{}, Status: 200, Errors: []int{503}, handle: s.readyz},
		{Method: "GET", Path: "/metrics", Permission: lethe.PermMetrics, Summary: "Prometheus metrics (text exposition format)", Status: 200, handle: s.metricsHandler},
		{Method: "GET", Path: "/v1/openapi.json", Permission: lethe.PermSelf, Summary: "This API's OpenAPI 3.1 document", Status: 200, handle: s.openapi},
		{Method: "GET", Path: "/v1/whoami", Permission: lethe.PermSelf, Summary: "The calling principal: key ID, name, role and permissions", Response: principalResponse{}, Status: 200, handle: s.whoami},
		{Method: "POST", Path: "/v1/keys", Permission: lethe.PermKeysManage, Summary: "Create an API key; its secret is in this response only", Request: createKeyRequest{}, Response: createdKeyResponse{}, Status: 201, Errors: []int{400, 413, 415}, handle: s.createKey},
		{Method: "GET", Path: "/v1/keys", Permission: lethe.PermKeysManage, Summary: "List API keys (never their secrets)", Response: keyListResponse{}, Status: 200, handle: s.listKeys},
		{Method: "DELETE", Path: "/v1/keys/{id}", Permission: lethe.PermKeysManage, Summary: "Revoke an API key", Status: 204, Errors: []int{404, 409}, handle: s.revokeKey},
		{Method: "POST", Path: "/v1/subjects", Permission: lethe.PermSubjectsWrite, Summary: "Create a subject from identifiers and a profile; values are sealed under the subject's own key", Request: createSubjectRequest{}, Response: lethe.SubjectView{}, Status: 201, Errors: []int{400, 409, 413, 415}, handle: s.createSubject},
		{Method: "POST", Path: "/v1/subjects/lookup", Permission: lethe.PermSubjectsReadMasked, Summary: "Find a subject by an identifier (through its blind index) and read it; roles without subjects.read get masked values", Request: lookupRequest{}, Response: lethe.SubjectView{}, Status: 200, Errors: []int{400, 404, 410, 413, 415}, handle: s.lookupSubject},
		{Method: "GET", Path: "/v1/subjects/{id}", Permission: lethe.PermSubjectsReadMasked, Summary: "Read a subject (fields=a,b selects, masked=true masks); roles without subjects.read get masked values", Response: lethe.SubjectView{}, Status: 200, Errors: []int{400, 404, 410}, handle: s.readSubject},
		{Method: "PATCH", Path: "/v1/subjects/{id}", Permission: lethe.PermSubjectsWrite, Summary: "Rectify a subject: a JSON merge patch of the profile, identifiers to set (or null to remove), and the reason", Request: updateSubjectRequest{}, Response: lethe.SubjectView{}, Status: 200, Errors: []int{400, 404, 409, 410, 413, 415}, handle: s.updateSubject},
		{Method: "GET", Path: "/v1/subjects/{id}/history", Permission: lethe.PermSubjectsHistory, Summary: "Every version of the subject's record with who, when and why", Response: historyResponse{}, Status: 200, Errors: []int{400, 404, 410}, handle: s.subjectHistory},
		{Method: "DELETE", Path: "/v1/tenants/{tenant}", Permission: lethe.PermTenantsErase, Summary: "Erase a whole tenant: destroy its key (and so every subject key under it), then delete its data; the body must confirm the tenant's name", Request: eraseTenantRequest{}, Response: erasureResponse{}, Status: 200, Errors: []int{400, 404}, handle: s.eraseTenant},
		{Method: "POST", Path: "/v1/tokens", Permission: lethe.PermTokensCreate, Summary: "Turn a subject's values (or references to its fields) into opaque tokens; deterministic on request", Request: tokenizeRequest{}, Response: tokenizeResponse{}, Status: 201, Errors: []int{400, 404, 410, 413, 415}, handle: s.tokenize},
		{Method: "POST", Path: "/v1/detokenize", Permission: lethe.PermTokensDetokenize, Summary: "Turn up to 10,000 tokens back into values for a purpose; each answers ok, gone, not_found or denied (a single token answers 410/404/403)", Request: detokenizeRequest{}, Response: detokenizeResponse{}, Status: 200, Errors: []int{400, 404, 410, 413, 415}, handle: s.detokenize},
		{Method: "GET", Path: "/v1/audit", Permission: lethe.PermAuditRead, Summary: "A subject's audit events (subject=ID, after=INDEX, limit=1..1000, default 100), each with an RFC 6962 inclusion proof against a C2SP signed checkpoint; verify offline with 'lethe audit verify-proof'", Response: lethe.AuditBundle{}, Status: 200, Errors: []int{400, 503}, handle: s.auditEvents},
		{Method: "GET", Path: "/v1/purposes", Permission: lethe.PermSelf, Summary: "The declared purposes: legal basis, data categories, retention and current policy version", Response: purposesResponse{}, Status: 200, handle: s.listPurposes},
		{Method: "POST", Path: "/v1/consent", Permission: lethe.PermConsentWrite, Summary: "Record consents, withdrawals, restrictions and objections (up to 10,000), all or none, each audited; IP and user agent are kept only as keyed hashes", Request: recordConsentRequest{}, Response: recordConsentResponse{}, Status: 201, Errors: []int{400, 404, 410, 413, 415, 503}, handle: s.recordConsent},
		{Method: "POST", Path: "/v1/consent/import", Permission: lethe.PermConsentWrite, Summary: "Import existing consents (text/csv with a header, or JSON records; up to 1,000,000): every valid record is recorded and audited, every other one is reported by row with the reason", Request: recordConsentRequest{}, Response: lethe.ImportReport{}, Status: 200, Errors: []int{400, 413, 415, 503}, BodyLimit: 256 << 20, handle: s.importConsent},
		{Method: "GET", Path: "/v1/consent/check", Permission: lethe.PermConsentCheck, Summary: "May this subject be processed for this purpose? (subject, purpose, optional min_revision) The answer names the reason and the ledger revision", Response: lethe.ConsentDecision{}, Status: 200, Errors: []int{400, 503}, handle: s.checkConsent},
		{Method: "POST", Path: "/v1/consent/check", Permission: lethe.PermConsentCheck, Summary: "Filter up to 100,000 subjects for a purpose: the allowed ones, and why each other one is denied", Request: batchCheckRequest{}, Response: lethe.BatchDecision{}, Status: 200, Errors: []int{400, 413, 415, 503}, BodyLimit: 8 << 20, handle: s.checkConsentBatch},
		{Method: "GET", Path: "/v1/consent/stream", Permission: lethe.PermConsentCheck, Summary: "The tenant's consent-ledger events as server-sent events (after=REVISION to resume), with a revision heartbeat every 250 ms; what the Go client's in-process cache follows", Status: 200, Errors: []int{400}, handle: s.consentStream},
		{Method: "GET", Path: "/v1/subjects/{id}/consent", Permission: lethe.PermConsentRead, Summary: "A subject's consent ledger, oldest first: every grant, withdrawal, restriction and objection with its proof", Response: consentHistoryResponse{}, Status: 200, Errors: []int{400}, handle: s.consentHistory},
		{Method: "DELETE", Path: "/v1/subjects/{id}", Permission: lethe.PermSubjectsErase, Summary: "Erase a subject: destroy its key, then delete its data; later reads answer 410", Response: erasureResponse{}, Status: 200, Errors: []int{400, 404}, handle: s.eraseSubject},
		{Method: "GET", Path: "/v1/forgotten/{ref}", Permission: lethe.PermForgottenCheck, Summary: "Is this subject forgotten? ref is a subject ID or a token of the tenant: 410 with erased_at if the subject (or its whole tenant) was erased, 200 if it is known and not, 404 if unknown; answers nothing personal", Response: forgottenResponse{}, Gone: forgottenProblem{}, Status: 200, Errors: []int{400, 404, 410}, handle: s.checkForgotten},
	}
	if s.requests != nil {
		routes = append(routes, s.requestRoutes()...)
	}
	return routes
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range s.routes {
		mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	// Requests no route matches still authenticate first, so that without
	// credentials every path but the probes answers 401 and the API's shape
	// is not revealed to strangers; then 405 for a known path, 404 otherwise.
	known := http.NewServeMux()
	for path, ms := range methods {
		allow := allowHeader(ms)
		known.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeProblem(w, r, http.StatusMethodNotAllowed, lethe.EUNSUPPORTED, fmt.Sprintf("method %s not allowed here; allowed: %s", r.Method, allow))
		})
	}
	fallback := Route{Path: "unmatched", Permission: lethe.PermSelf, handle: func(w http.ResponseWriter, r *http.Request) error {
		if _, pattern := known.Handler(r); pattern != "" {
			known.ServeHTTP(w, r)
			return nil
		}
		return lethe.Errorf(lethe.ENOTFOUND, "no such endpoint")
	}}
	mux.Handle("/", s.wrap(fallback))
	return s.withRequest(mux)
}

func allowHeader(methods []string) string {
	ms := append([]string(nil), methods...)
	for _, m := range methods {
		if m == "GET" {
			ms = append(ms, "HEAD")
		}
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// wrap applies authentication, authorization, rate limiting and the body
// limit for one route, and turns the handler's error into a problem.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw, _ := w.(*statusWriter)
		if sw != nil {
			sw.route = rt.Path
		}
		if rt.Permission != lethe.PermPublic {
			key, err := s.authenticate(r)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if sw != nil {
				sw.keyID = key.ID
			}
			if ok, retry := s.limits.allow(key.ID, s.now()); !ok {
				w.Header().Set("Retry-After", fmt.Sprint(retry))
				s.fail(w, r, lethe.Errorf(lethe.ERATELIMIT, "rate limit exceeded for key %s; retry after %d s", key.ID, retry))
				return
			}
			if !key.Role.Can(rt.Permission) {
				s.fail(w, r, lethe.Errorf(lethe.EFORBIDDEN, "role %s lacks permission %s", key.Role, rt.Permission))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), principalKey{}, key))
		}
		limit := s.maxBody
		if rt.BodyLimit > limit {
			limit = rt.BodyLimit
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := rt.handle(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fail answers with err's problem and logs internal errors. Messages of
// domain errors are not logged: they may echo what the caller sent.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if lethe.ErrorCode(err) == lethe.EINTERNAL {
		s.log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "err", err.Error())
	}
	writeError(w, r, err)
}

type principalKey struct{}

// principal returns the authenticated key of the request; routes with a
// permission always have one.
func principal(ctx context.Context) *lethe.APIKey {
	k, _ := ctx.Value(principalKey{}).(*lethe.APIKey)
	return k
}

// authenticate resolves the bearer key of r. EUNAUTHORIZED if it is
// missing, unknown, revoked or expired; the message does not say which, so
// a caller learns nothing about keys it does not hold.
func (s *Server) authenticate(r *http.Request) (*lethe.APIKey, error) {
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" {
		return nil, lethe.Errorf(lethe.EUNAUTHORIZED, "missing credentials: send Authorization: Bearer <api key>")
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return nil, lethe.Errorf(lethe.EUNAUTHORIZED, "malformed Authorization header: use Bearer <api key>")
	}
	hash := lethe.HashAPIKeySecret(strings.TrimSpace(secret))
	now := s.now()
	key := s.authn.get(hash, now)
	if key == nil {
		var err error
		key, err = s.keys.APIKeyByHash(r.Context(), hash)
		if lethe.ErrorCode(err) == lethe.ENOTFOUND {
			return nil, lethe.Errorf(lethe.EUNAUTHORIZED, "invalid, expired or revoked API key")
		} else if err != nil {
			return nil, fmt.Errorf("authenticate: %w", err)
		}
		s.authn.put(hash, key, now)
	}
	if !key.Active(now) {
		return nil, lethe.Errorf(lethe.EUNAUTHORIZED, "invalid, expired or revoked API key")
	}
	return key, nil
}
