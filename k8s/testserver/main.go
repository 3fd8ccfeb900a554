// testserver: a CRD-only Kubernetes API server for meshdlp's tests (tests/k8s). NEVER shipped.
//
// Why: no kube-apiserver, kind or k3s can be had on the project's machines, but Debian ships the Go
// source of k8s.io/apiextensions-apiserver - the part of kube-apiserver that serves
// CustomResourceDefinitions and enforces their OpenAPI schemas and CEL rules. Its stock binary needs
// an in-cluster config and serves no /apis root discovery, so kubectl cannot talk to it. This main()
// wraps the same server library the way a test needs it:
//   - no core API connection (CoreAPI = nil): no Namespaces, Pods, Secrets, RBAC, garbage collector;
//   - no admission plugins, no priority-and-fairness;
//   - authentication by client certificate only (--client-ca-file); anonymous requests reach only
//     /healthz, /readyz, /livez; group system:masters (the default AlwaysAllowGroups) may do anything;
//   - conversion webhooks cannot resolve Services (stub resolver);
//   - /apis answers with the group list built from the established CRDs (aggregated discovery
//     when the client asks for it), /api with an empty version list; OpenAPI v2 and v3 are served,
//     so `kubectl apply --server-side`, `explain`, `--dry-run=server` and watches work.
//
// Built by `make k8s-tools` in GOPATH mode against Debian's golang-k8s-apiextensions-apiserver-dev
// (no network); started by tests/k8s/cluster.py with etcd on 127.0.0.1. Flags are the upstream
// apiextensions-apiserver ones (--etcd-servers, --secure-port, --tls-cert-file, --client-ca-file...).
package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	noopoteltrace "go.opentelemetry.io/otel/trace/noop"

	"k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	listers "k8s.io/apiextensions-apiserver/pkg/client/listers/apiextensions/v1"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/kubernetes/scheme"
)

// noServices replaces the upstream resolver, which reads Services through the core API we do not have.
type noServices struct{}

func (noServices) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	return nil, fmt.Errorf("testserver has no Services: cannot resolve %s/%s:%d (conversion webhooks unsupported)", namespace, name, port)
}

// discovery is the delegate behind the CRD handler: it gets /apis (root), /api and every path
// nobody else served.
type discovery struct {
	crds listers.CustomResourceDefinitionLister
	apis http.Handler // legacy group list, or aggregated discovery when asked for
}

func (d *discovery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimSuffix(r.URL.Path, "/") {
	case "/apis":
		d.apis.ServeHTTP(w, r)
	case "/api":
		writeJSON(w, http.StatusOK, &metav1.APIVersions{
			TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{}})
	default:
		writeJSON(w, http.StatusNotFound, &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure,
			Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound,
			Message: fmt.Sprintf("the server could not find the requested resource (testserver serves CRDs only): %s", r.URL.Path)})
	}
}

// groupList is the legacy /apis answer: apiextensions.k8s.io plus every group with an established
// CRD, versions ordered as the upstream discovery controller orders them (preferred first).
func (d *discovery) groupList(w http.ResponseWriter, _ *http.Request) {
	versions := map[string]map[string]bool{"apiextensions.k8s.io": {"v1": true}}
	crds, err := d.crds.List(labels.Everything())
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, &metav1.Status{Status: metav1.StatusFailure, Message: err.Error()})
		return
	}
	for _, crd := range crds {
		if !apihelpers.IsCRDConditionTrue(crd, apiextensionsv1.Established) {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Served {
				if versions[crd.Spec.Group] == nil {
					versions[crd.Spec.Group] = map[string]bool{}
				}
				versions[crd.Spec.Group][v.Name] = true
			}
		}
	}
	names := make([]string, 0, len(versions))
	for g := range versions {
		names = append(names, g)
	}
	sort.Strings(names)
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}}
	for _, g := range names {
		var vs []metav1.GroupVersionForDiscovery
		for v := range versions[g] {
			vs = append(vs, metav1.GroupVersionForDiscovery{GroupVersion: g + "/" + v, Version: v})
		}
		sort.Slice(vs, func(i, j int) bool { return version.CompareKubeAwareVersionStrings(vs[i].Version, vs[j].Version) > 0 })
		list.Groups = append(list.Groups, metav1.APIGroup{Name: g, Versions: vs, PreferredVersion: vs[0]})
	}
	writeJSON(w, http.StatusOK, list)
}

func writeJSON(w http.ResponseWriter, code int, v interface{}) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

func run() error {
	o := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	ro := o.RecommendedOptions
	ro.CoreAPI = nil
	ro.Admission = nil
	ro.Features.EnablePriorityAndFairness = false
	ro.Authentication.RemoteKubeConfigFileOptional = true
	ro.Authentication.SkipInClusterLookup = true
	ro.Authorization.RemoteKubeConfigFileOptional = true

	fs := pflag.NewFlagSet("testserver", pflag.ExitOnError)
	o.AddFlags(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		return err
	}
	if err := o.ServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return err
	}
	if err := o.Complete(); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}

	// options.Config() without its Service lister (nil without CoreAPI), plus OpenAPI v2, which the
	// upstream server leaves out and which the CRD OpenAPI controllers need (StaticOpenAPISpec).
	serverConfig := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	namer := openapinamer.NewDefinitionNamer(apiserver.Scheme, scheme.Scheme)
	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	serverConfig.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, namer)
	serverConfig.OpenAPIConfig.Info.Title = "meshdlp testserver"
	serverConfig.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, namer)
	serverConfig.OpenAPIV3Config.Info.Title = "meshdlp testserver"
	if err := o.ServerRunOptions.ApplyTo(&serverConfig.Config); err != nil {
		return err
	}
	if err := ro.ApplyTo(serverConfig); err != nil {
		return err
	}
	if err := o.APIEnablement.ApplyTo(&serverConfig.Config, apiserver.DefaultAPIResourceConfigSource(), apiserver.Scheme); err != nil {
		return err
	}
	config := &apiserver.Config{
		GenericConfig: serverConfig,
		ExtraConfig: apiserver.ExtraConfig{
			CRDRESTOptionsGetter: options.NewCRDRESTOptionsGetter(*ro.Etcd, serverConfig.ResourceTransformers, serverConfig.StorageObjectCountTracker),
			ServiceResolver:      noServices{},
			AuthResolverWrapper:  webhook.NewDefaultAuthenticationInfoResolverWrapper(nil, nil, serverConfig.LoopbackClientConfig, noopoteltrace.NewTracerProvider()),
		},
	}

	disc := &discovery{}
	server, err := config.Complete().New(genericapiserver.NewEmptyDelegateWithCustomHandler(disc))
	if err != nil {
		return err
	}
	disc.crds = server.Informers.Apiextensions().V1().CustomResourceDefinitions().Lister()
	disc.apis = aggregated.WrapAggregatedDiscoveryToHandler(http.HandlerFunc(disc.groupList),
		server.GenericAPIServer.AggregatedDiscoveryGroupManager, nil)

	ctx := genericapiserver.SetupSignalContext()
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testserver:", err)
		os.Exit(1)
	}
}
