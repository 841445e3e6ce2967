package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// fakeKubernetes is a Kubernetes API server answering list and watch of
// pods with Kubernetes' own API types, as client-go (inside Prometheus'
// discovery) asks for them. It returns the server's URL.
func fakeKubernetes(t *testing.T, pods []corev1.Pod) string {
	return newFakeCluster(t, pods).URL
}

// writeKubeconfig writes a kubeconfig naming the API server at url, and
// returns its path.
func writeKubeconfig(t *testing.T, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: %q}}]
users: [{name: agent, user: {token: fake}}]
contexts: [{name: fake, context: {cluster: fake, user: agent}}]
current-context: fake
`, url)), 0o600))
	return path
}

// fakeCluster is fakeKubernetes' API server, whose pods a test may delete:
// open watches see a DELETED event, and later lists and watches the pods
// that remain.
type fakeCluster struct {
	URL string
	mu  sync.Mutex
	rv  int // The resource version of the newest change.
	// pods are the pods now; deleted the DELETED events, each with its
	// resource version, that watches from an older version are sent.
	pods    []corev1.Pod
	deleted []corev1.Pod
	// changed is closed, and replaced, at each change.
	changed chan struct{}
}

func newFakeCluster(t *testing.T, pods []corev1.Pod) *fakeCluster {
	t.Helper()
	c := &fakeCluster{rv: 1, pods: pods, changed: make(chan struct{})}
	for i := range c.pods {
		c.pods[i].TypeMeta = metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"}
		c.pods[i].ResourceVersion = "1"
	}
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// DeletePod deletes a pod, as the API server would when it is gone.
func (c *fakeCluster) DeletePod(t *testing.T, namespace, name string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, p := range c.pods {
		if p.Namespace == namespace && p.Name == name {
			c.rv++
			p.ResourceVersion = strconv.Itoa(c.rv)
			c.deleted = append(c.deleted, p)
			c.pods = slices.Delete(c.pods, i, i+1)
			close(c.changed)
			c.changed = make(chan struct{})
			return
		}
	}
	t.Fatalf("the fake cluster has no pod %s/%s", namespace, name)
}

func (c *fakeCluster) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/pods" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	c.mu.Lock()
	pods, rv := slices.Clone(c.pods), c.rv
	c.mu.Unlock()
	if r.URL.Query().Get("watch") != "true" {
		_ = json.NewEncoder(w).Encode(corev1.PodList{TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			ListMeta: metav1.ListMeta{ResourceVersion: strconv.Itoa(rv)}, Items: pods})
		return
	}
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	// A watch sends the changes after its resourceVersion.
	from, _ := strconv.Atoi(r.URL.Query().Get("resourceVersion"))
	if r.URL.Query().Get("sendInitialEvents") == "true" {
		// client-go's streaming list: the pods as ADDED events, then a
		// bookmark ending the initial events.
		for _, p := range pods {
			_ = enc.Encode(map[string]any{"type": "ADDED", "object": p})
		}
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": corev1.Pod{
			TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{ResourceVersion: strconv.Itoa(rv), Annotations: map[string]string{"k8s.io/initial-events-end": "true"}}}})
		from = rv
	}
	timeout := time.After(time.Minute)
	for {
		c.mu.Lock()
		var events []corev1.Pod
		for _, p := range c.deleted {
			if v, _ := strconv.Atoi(p.ResourceVersion); v > from {
				events = append(events, p)
			}
		}
		from = c.rv
		changed := c.changed
		c.mu.Unlock()
		for _, p := range events {
			_ = enc.Encode(map[string]any{"type": "DELETED", "object": p})
		}
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-timeout:
			return
		case <-changed:
		}
	}
}

// TestAgentKubernetesNodeSharding runs two agents as a DaemonSet would, one
// per node, against a fake API server listing pods on both nodes: each
// scrapes only its own node's pods.
func TestAgentKubernetesNodeSharding(t *testing.T) {
	envoy := envoyTarget(t)
	_, port, err := net.SplitHostPort(envoy)
	require.NoError(t, err)
	p, err := strconv.Atoi(port)
	require.NoError(t, err)
	var pods []corev1.Pod
	for i, node := range []string{"node-a", "node-b", "node-a", "node-b", "node-b"} {
		pods = append(pods, corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("frontend-%d", i), Namespace: "mesh", UID: types.UID("uid-" + strconv.Itoa(i)),
				ResourceVersion: "1", Labels: map[string]string{"app": "frontend"}},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "envoy",
				Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: int32(p), Protocol: corev1.ProtocolTCP}}}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.1", HostIP: "127.0.0.1",
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
		})
	}
	api := fakeKubernetes(t, pods)
	kubeconfig := writeKubeconfig(t, api)
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: envoy-sidecars
    metrics_path: /stats/prometheus
    kubernetes_sd_configs: [{role: pod, kubeconfig_file: %q}]
    relabel_configs:
      - {source_labels: [__meta_kubernetes_pod_container_port_name], regex: http-envoy-prom, action: keep}
      - {source_labels: [__meta_kubernetes_pod_name], target_label: pod}
      - {source_labels: [__meta_kubernetes_pod_node_name], target_label: node}
`, kubeconfig)
	for node, want := range map[string][]string{"node-a": {"frontend-0", "frontend-2"}, "node-b": {"frontend-1", "frontend-3", "frontend-4"}} {
		_, addr := startAgent(t, config, t.TempDir(), "--node-name", node)
		apptest.Eventually(t, 30*time.Second, func() error {
			_, body := apptest.Get(t, "http://"+addr+"/api/v1/targets")
			var r struct {
				Data struct {
					ActiveTargets []struct {
						Labels map[string]string `json:"labels"`
						Health string            `json:"health"`
					} `json:"activeTargets"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &r); err != nil {
				return err
			}
			var got []string
			for _, tg := range r.Data.ActiveTargets {
				if tg.Labels["node"] != node {
					return fmt.Errorf("agent on %s has a target on %s: %v", node, tg.Labels["node"], tg.Labels)
				}
				if tg.Health != "up" {
					return fmt.Errorf("target %v is %s", tg.Labels, tg.Health)
				}
				got = append(got, tg.Labels["pod"])
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("agent on %s scrapes %v, want %v", node, got, want)
			}
			return nil
		})
	}
}
