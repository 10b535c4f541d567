package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"

	"gantry.io/gantry/api"
	"gantry.io/gantry/store"
)

// maxBody bounds a request body (objects are small; the limit stops abuse).
const maxBody = 4 << 20

// handlerFunc serves one authenticated request. It authorizes itself, because only it
// knows the object (and so the node) the request is about.
type handlerFunc func(w http.ResponseWriter, r *http.Request, id Identity) error

// route wraps h with authentication, metrics and error rendering.
func (s *Server) route(verb Verb, resource string, streamed bool, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		v := verb
		if verb == VerbList && r.URL.Query().Get("watch") == "true" {
			v, streamed = VerbWatch, true
		}
		defer func() { s.metrics.observe(v, resource, start, rec.code, streamed) }()
		id, err := authenticate(r.Context(), r, s.tokens)
		if err != nil {
			writeError(rec, err)
			return
		}
		if verb != VerbExec { // exec's body is stdin, which may be long
			r.Body = http.MaxBytesReader(rec, r.Body, maxBody)
		}
		if err := h(rec, r, id); err != nil {
			if rec.code != 0 {
				return // the stream had started; the error ends it
			}
			writeError(rec, err)
		}
	}
}

// Handler returns the API's HTTP handler (Start serves it; tests may wrap it).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.route(VerbGet, "metrics", false, func(w http.ResponseWriter, r *http.Request, id Identity) error {
		if err := Authorize(id, Request{Verb: VerbGet, Resource: "metrics"}); err != nil {
			return err
		}
		s.metrics.handler().ServeHTTP(w, r)
		return nil
	}))
	mux.Handle("POST "+api.APIPrefix+"/join", s.route(VerbCreate, "join", false, s.join))
	mux.Handle("POST "+api.APIPrefix+"/tokens", s.route(VerbCreate, "tokens", false, s.createToken))

	registerKind(mux, s, newNodeAPI(s))
	registerKind(mux, s, newPodAPI(s))
	registerKind(mux, s, newEventAPI(s))
	s.registerApps(mux)
	mux.Handle("POST "+api.APIPrefix+"/plan", s.route(VerbGet, "plan", false, s.planHandler))
	s.registerServices(mux)
	s.registerJobs(mux)
	pods := "/namespaces/{ns}/pods/{name}"
	mux.Handle("GET "+api.APIPrefix+pods+"/log", s.route(VerbLogs, "pods", true, s.proxyLogs))
	mux.Handle("POST "+api.APIPrefix+pods+"/exec", s.route(VerbExec, "pods", true, s.proxyExec))
	mux.Handle("GET "+api.APIPrefix+"/nodes/{node}/pods/{ns}/{name}/material", s.route(VerbGet, "material", false, s.podMaterial))
	return mux
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.st.Client().Get(ctx, "/gantry/health"); err != nil {
		http.Error(w, "etcd: unavailable\n", http.StatusServiceUnavailable)
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

// kindAPI serves one kind's REST endpoints over its store.Resource. The hooks carry
// what differs between kinds.
type kindAPI[T any, PT interface {
	*T
	store.Object
}] struct {
	s        *Server
	res      *store.Resource[T, PT]
	typeName string
	// fields returns the field-selector view of an object.
	fields func(PT) fields.Set
	// nodeOf returns the node an object belongs to for authorization ("" = none).
	nodeOf func(PT) string
	// copyStatus copies src's status into dst.
	copyStatus func(dst, src PT)
	// onCreate defaults and checks a new object; onUpdate merges an update into
	// what may change (cur is the stored object); onStatus adjusts a status write;
	// onDelete runs after a delete.
	onCreate func(ctx context.Context, id Identity, obj PT) error
	onUpdate func(ctx context.Context, id Identity, cur, in PT) error
	onStatus func(ctx context.Context, id Identity, obj PT)
	onDelete func(ctx context.Context, obj PT)
}

func registerKind[T any, PT interface {
	*T
	store.Object
}](mux *http.ServeMux, s *Server, k *kindAPI[T, PT]) {
	kind := k.res.Kind()
	res := string(kind)
	p := api.APIPrefix
	if !kind.Namespaced() {
		mux.Handle("GET "+p+"/"+res, s.route(VerbList, res, false, k.list))
		mux.Handle("POST "+p+"/"+res, s.route(VerbCreate, res, false, k.create))
		mux.Handle("GET "+p+"/"+res+"/{name}", s.route(VerbGet, res, false, k.get))
		mux.Handle("PUT "+p+"/"+res+"/{name}", s.route(VerbUpdate, res, false, k.update))
		mux.Handle("PUT "+p+"/"+res+"/{name}/status", s.route(VerbUpdate, res, false, k.updateStatus))
		mux.Handle("DELETE "+p+"/"+res+"/{name}", s.route(VerbDelete, res, false, k.delete))
		return
	}
	mux.Handle("GET "+p+"/"+res, s.route(VerbList, res, false, k.list))
	ns := p + "/namespaces/{ns}/" + res
	mux.Handle("GET "+ns, s.route(VerbList, res, false, k.list))
	mux.Handle("POST "+ns, s.route(VerbCreate, res, false, k.create))
	mux.Handle("GET "+ns+"/{name}", s.route(VerbGet, res, false, k.get))
	mux.Handle("PUT "+ns+"/{name}", s.route(VerbUpdate, res, false, k.update))
	mux.Handle("PUT "+ns+"/{name}/status", s.route(VerbUpdate, res, false, k.updateStatus))
	mux.Handle("DELETE "+ns+"/{name}", s.route(VerbDelete, res, false, k.delete))
}

func (k *kindAPI[T, PT]) kind() api.Kind { return k.res.Kind() }

// typed sets apiVersion and kind, which the store does not keep.
func (k *kindAPI[T, PT]) typed(o PT) PT {
	o.GetObjectKind().SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: k.typeName})
	return o
}

func (k *kindAPI[T, PT]) owners(objs ...PT) []string {
	var out []string
	for _, o := range objs {
		if o != nil {
			out = append(out, k.nodeOf(o))
		}
	}
	return out
}

func (k *kindAPI[T, PT]) list(w http.ResponseWriter, r *http.Request, id Identity) error {
	q := r.URL.Query()
	ns := r.PathValue("ns")
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return fmt.Errorf("labelSelector: %v: %w", err, api.ErrInvalidArgument)
	}
	fsel, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return fmt.Errorf("fieldSelector: %v: %w", err, api.ErrInvalidArgument)
	}
	watch := q.Get("watch") == "true"
	req := Request{Verb: VerbList, Kind: k.kind()}
	if watch {
		req.Verb = VerbWatch
	}
	req.FieldNode, _ = fsel.RequiresExactMatch("spec.nodeName")
	if k.kind() == api.KindNode {
		req.Name, _ = fsel.RequiresExactMatch("metadata.name")
	}
	if err := Authorize(id, req); err != nil {
		return err
	}
	var filter func(store.Object) bool
	if !fsel.Empty() {
		filter = func(o store.Object) bool { return fsel.Matches(k.fields(o.(PT))) }
	}
	if watch {
		return k.watch(w, r, ns, sel, filter)
	}
	var limit int64
	if l := q.Get("limit"); l != "" {
		if limit, err = strconv.ParseInt(l, 10, 64); err != nil || limit < 0 {
			return fmt.Errorf("limit %q: %w", l, api.ErrInvalidArgument)
		}
	}
	res, err := k.res.ListRaw(r.Context(), ns, store.ListOptions{Selector: sel, Filter: filter, Limit: limit, Continue: q.Get("continue")},
		`"kind":"`+k.typeName+`","apiVersion":"v1",`)
	if err != nil {
		return err
	}
	// The items are passed through as stored (see store.ListRaw): no decode/encode.
	meta, err := json.Marshal(metav1.ListMeta{ResourceVersion: res.ResourceVersion, Continue: res.Continue})
	if err != nil {
		return fmt.Errorf("encode list: %w", err)
	}
	size := 128
	for _, it := range res.Items {
		size += len(it) + 1
	}
	buf := make([]byte, 0, size)
	buf = append(buf, `{"kind":"`+k.typeName+`List","apiVersion":"v1","metadata":`...)
	buf = append(buf, meta...)
	buf = append(buf, `,"items":[`...)
	for i, it := range res.Items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it...)
	}
	buf = append(buf, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf)
	return nil
}

func (k *kindAPI[T, PT]) watch(w http.ResponseWriter, r *http.Request, ns string, sel labels.Selector, filter func(store.Object) bool) error {
	ch, err := k.res.Watch(r.Context(), ns, store.WatchOptions{ResourceVersion: r.URL.Query().Get("resourceVersion"), Selector: sel, Filter: filter})
	if err != nil {
		return err
	}
	k.s.metrics.watches.Inc()
	defer k.s.metrics.watches.Dec()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	if flusher != nil {
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for ev := range ch {
		if err := enc.Encode(struct {
			Type   store.EventType `json:"type"`
			Object PT              `json:"object"`
		}{ev.Type, k.typed(ev.Object)}); err != nil {
			return nil // the client went away
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
	return nil
}

func (k *kindAPI[T, PT]) get(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	obj, err := k.res.Get(r.Context(), ns, name)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return err
	}
	if aerr := Authorize(id, Request{Verb: VerbGet, Kind: k.kind(), Name: name, ObjectNode: k.owners(obj)}); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, k.typed(obj))
}

func (k *kindAPI[T, PT]) decode(r *http.Request) (PT, error) {
	obj := PT(new(T))
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("decode %s: %v: %w", k.typeName, err, api.ErrInvalidArgument)
	}
	ns := r.PathValue("ns")
	if k.kind().Namespaced() {
		if obj.GetNamespace() != "" && obj.GetNamespace() != ns {
			return nil, fmt.Errorf("%s namespace %q does not match the path's %q: %w", k.typeName, obj.GetNamespace(), ns, api.ErrInvalidArgument)
		}
		obj.SetNamespace(ns)
	}
	if name := r.PathValue("name"); name != "" {
		if obj.GetName() != "" && obj.GetName() != name {
			return nil, fmt.Errorf("%s name %q does not match the path's %q: %w", k.typeName, obj.GetName(), name, api.ErrInvalidArgument)
		}
		obj.SetName(name)
	}
	return obj, nil
}

func (k *kindAPI[T, PT]) create(w http.ResponseWriter, r *http.Request, id Identity) error {
	obj, err := k.decode(r)
	if err != nil {
		return err
	}
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		suffix, err := api.NewToken()
		if err != nil {
			return err
		}
		obj.SetName(obj.GetGenerateName() + suffix.ID[:5])
	}
	if err := Authorize(id, Request{Verb: VerbCreate, Kind: k.kind(), Name: obj.GetName(), ObjectNode: k.owners(obj)}); err != nil {
		return err
	}
	if errs := validation.IsDNS1123Subdomain(obj.GetName()); len(errs) > 0 {
		return fmt.Errorf("%s name %q: %s: %w", k.typeName, obj.GetName(), errs[0], api.ErrInvalidArgument)
	}
	obj.SetUID("")
	obj.SetResourceVersion("")
	obj.SetCreationTimestamp(metav1.Time{})
	if k.onCreate != nil {
		if err := k.onCreate(r.Context(), id, obj); err != nil {
			return err
		}
	}
	out, err := k.res.Create(r.Context(), obj)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, k.typed(out))
}

// maxRetries bounds server-side retries of writes that carry no resourceVersion.
const maxRetries = 8

func (k *kindAPI[T, PT]) update(w http.ResponseWriter, r *http.Request, id Identity) error {
	in, err := k.decode(r)
	if err != nil {
		return err
	}
	return k.write(w, r, id, in, "", func(ctx context.Context, cur PT) (PT, error) {
		next := PT(in.DeepCopyObject().(PT))
		if next.GetUID() == "" {
			next.SetUID(cur.GetUID())
		}
		if next.GetUID() != cur.GetUID() {
			return nil, fmt.Errorf("%s %s: uid %s does not match the stored %s: %w", k.typeName, cur.GetName(), next.GetUID(), cur.GetUID(), api.ErrConflict)
		}
		next.SetCreationTimestamp(cur.GetCreationTimestamp())
		if k.onUpdate != nil {
			if err := k.onUpdate(ctx, id, cur, next); err != nil {
				return nil, err
			}
		}
		return next, nil
	})
}

func (k *kindAPI[T, PT]) updateStatus(w http.ResponseWriter, r *http.Request, id Identity) error {
	in, err := k.decode(r)
	if err != nil {
		return err
	}
	return k.write(w, r, id, in, "status", func(ctx context.Context, cur PT) (PT, error) {
		next := PT(cur.DeepCopyObject().(PT))
		k.copyStatus(next, in)
		if k.onStatus != nil {
			k.onStatus(ctx, id, next)
		}
		return next, nil
	})
}

// write runs a read-authorize-mutate-CAS cycle. With a resourceVersion in the request
// it is the client's compare-and-swap (409 on conflict); without one the server
// retries on conflict.
func (k *kindAPI[T, PT]) write(w http.ResponseWriter, r *http.Request, id Identity, in PT, sub string, mutate func(context.Context, PT) (PT, error)) error {
	ctx := r.Context()
	for range maxRetries {
		cur, err := k.res.Get(ctx, in.GetNamespace(), in.GetName())
		if err != nil && !errors.Is(err, api.ErrNotFound) {
			return err
		}
		owners := k.owners(cur)
		if sub == "" {
			owners = k.owners(cur, in)
		}
		if aerr := Authorize(id, Request{Verb: VerbUpdate, Kind: k.kind(), Name: in.GetName(), Subresource: sub, ObjectNode: owners}); aerr != nil {
			return aerr
		}
		if err != nil {
			return err
		}
		next, err := mutate(ctx, cur)
		if err != nil {
			return err
		}
		if in.GetResourceVersion() != "" {
			next.SetResourceVersion(in.GetResourceVersion())
		} else {
			next.SetResourceVersion(cur.GetResourceVersion())
		}
		out, err := k.res.Update(ctx, next)
		if errors.Is(err, api.ErrConflict) && in.GetResourceVersion() == "" {
			continue
		}
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, k.typed(out))
	}
	return fmt.Errorf("%s %s: too many concurrent writers: %w", k.typeName, in.GetName(), api.ErrConflict)
}

func (k *kindAPI[T, PT]) delete(w http.ResponseWriter, r *http.Request, id Identity) error {
	ns, name := r.PathValue("ns"), r.PathValue("name")
	cur, err := k.res.Get(r.Context(), ns, name)
	if err != nil && !errors.Is(err, api.ErrNotFound) {
		return err
	}
	if aerr := Authorize(id, Request{Verb: VerbDelete, Kind: k.kind(), Name: name, ObjectNode: k.owners(cur)}); aerr != nil {
		return aerr
	}
	if err != nil {
		return err
	}
	out, err := k.res.Delete(r.Context(), ns, name, r.URL.Query().Get("resourceVersion"))
	if err != nil {
		return err
	}
	if k.onDelete != nil {
		k.onDelete(r.Context(), out)
	}
	return writeJSON(w, http.StatusOK, k.typed(out))
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// statusFor maps an error class to an HTTP code and a Kubernetes status reason.
func statusFor(err error) (int, metav1.StatusReason) {
	switch {
	case errors.Is(err, store.ErrExpired):
		return http.StatusGone, metav1.StatusReasonExpired
	case errors.Is(err, api.ErrUnauthenticated):
		return http.StatusUnauthorized, metav1.StatusReasonUnauthorized
	case errors.Is(err, api.ErrPermissionDenied):
		return http.StatusForbidden, metav1.StatusReasonForbidden
	case errors.Is(err, api.ErrNotFound):
		return http.StatusNotFound, metav1.StatusReasonNotFound
	case errors.Is(err, api.ErrAlreadyExists):
		return http.StatusConflict, metav1.StatusReasonAlreadyExists
	case errors.Is(err, api.ErrConflict):
		return http.StatusConflict, metav1.StatusReasonConflict
	case errors.Is(err, api.ErrInvalidArgument):
		return http.StatusBadRequest, metav1.StatusReasonBadRequest
	case errors.Is(err, api.ErrFailedPrecondition):
		return http.StatusPreconditionFailed, metav1.StatusReasonInvalid
	case errors.Is(err, api.ErrUnavailable):
		return http.StatusServiceUnavailable, metav1.StatusReasonServiceUnavailable
	case errors.Is(err, context.Canceled):
		return 499, metav1.StatusReasonTimeout
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, metav1.StatusReasonTimeout
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge, metav1.StatusReasonRequestEntityTooLarge
	}
	return http.StatusInternalServerError, metav1.StatusReasonInternalError
}

// writeError renders err as a Kubernetes Status object.
func writeError(w http.ResponseWriter, err error) {
	code, reason := statusFor(err)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="gantry"`)
	}
	_ = writeJSON(w, code, metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: err.Error(), Reason: reason, Code: int32(code),
	})
}
