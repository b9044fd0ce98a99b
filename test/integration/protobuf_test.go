package integration

import (
	"net/http"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"
	restclient "k8s.io/client-go/rest"
)

// TestProtobufClients: clients that prefer protobuf, such as the namespace
// controller's metadata client, are answered (in JSON), never with 406.
func TestProtobufClients(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"p1", "p2", "p3"} {
		e.create(newServer(n))
	}

	// The namespace controller lists and deletes with the metadata client.
	cfg := restclient.CopyConfig(e.config)
	cfg.ContentType, cfg.AcceptContentTypes = "", ""
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	list, err := meta.Resource(inferServersGVR).Namespace("default").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("metadata list: %v", err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("metadata list: %d items", len(list.Items))
	}

	for _, accept := range []string{
		"application/vnd.kubernetes.protobuf,application/json",
		"application/vnd.kubernetes.protobuf, */*",
		"application/vnd.kubernetes.protobuf;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
		"application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1,application/json;as=Table;g=meta.k8s.io;v=v1,application/json",
	} {
		var status int
		res := e.client.InferV1alpha1().RESTClient().Get().Namespace("default").Resource("inferservers").
			SetHeader("Accept", accept).Do(e.ctx).StatusCode(&status)
		if status != http.StatusOK {
			raw, _ := res.Raw()
			t.Errorf("list with Accept %q: status %d: %s", accept, status, raw)
		}
	}

	// Delete-collection as the namespace controller sends it.
	if err := meta.Resource(inferServersGVR).Namespace("default").DeleteCollection(e.ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		t.Fatalf("metadata delete-collection: %v", err)
	}
	left, err := e.client.InferV1alpha1().InferServers("default").List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 0 {
		t.Fatalf("delete-collection left %v", names(left.Items))
	}
	e.create(newServer("p4"))
	var status int
	e.client.InferV1alpha1().RESTClient().Delete().Namespace("default").Resource("inferservers").
		SetHeader("Accept", "application/vnd.kubernetes.protobuf,application/json").Do(e.ctx).StatusCode(&status)
	if status != http.StatusOK {
		t.Fatalf("delete-collection with a protobuf Accept: status %d", status)
	}
}
