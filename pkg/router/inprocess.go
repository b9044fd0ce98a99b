package router

import (
	"net/http"
	"net/url"
	"sync"
)

// inferenceMux matches the inference routes, for IsInferenceRoute.
var inferenceMux = sync.OnceValue(func() *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range inferenceRoutes {
		mux.Handle(rt.method+" "+rt.path, http.NotFoundHandler())
	}
	return mux
})

// IsInferenceRoute says whether the router routes method and path to an
// instance (an OpenAI, TGI, vLLM, Triton or MindIE inference route), as
// opposed to its own endpoints and paths it refuses. Callers that embed a
// Router's Handler behind another door (the API server's proxy
// subresource) use it to send only inference requests through it.
func IsInferenceRoute(method, path string) bool {
	_, pattern := inferenceMux().Handler(&http.Request{Method: method, URL: &url.URL{Path: path}})
	return pattern != ""
}
