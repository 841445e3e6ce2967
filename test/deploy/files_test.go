package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	yaml3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	kyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// deployPath returns the path of a file under deploy/.
func deployPath(parts ...string) string {
	return filepath.Join(append([]string{apptest.RepoRoot(), "deploy"}, parts...)...)
}

// decodeManifests decodes every document of a Kubernetes manifest file
// into its API type, strictly: unknown or duplicate fields are errors, as
// `kubectl apply --validate=strict` makes them.
func decodeManifests(path string) ([]runtime.Object, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, batchv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, fmt.Errorf("register kubernetes types: %w", err)
		}
	}
	dec := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	r := kyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		var content any
		if err := yaml3.Unmarshal(doc, &content); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		if content == nil { // Only comments.
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", path, i, err)
		}
		objs = append(objs, obj)
	}
}

// manifests are the decoded objects of deploy/kubernetes.
type manifests struct {
	deployment  *appsv1.Deployment
	statefulSet *appsv1.StatefulSet
	pdb         *policyv1.PodDisruptionBudget
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secret      *corev1.Secret
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	files, err := filepath.Glob(deployPath("kubernetes", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		objs, err := decodeManifests(f)
		require.NoError(t, err)
		for _, o := range objs {
			switch o := o.(type) {
			case *appsv1.Deployment:
				require.Nil(t, m.deployment, "one Deployment")
				m.deployment = o
			case *appsv1.StatefulSet:
				require.Nil(t, m.statefulSet, "one StatefulSet")
				m.statefulSet = o
			case *policyv1.PodDisruptionBudget:
				m.pdb = o
			case *corev1.Service:
				m.services[o.Name] = o
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secret = o
			default:
				t.Fatalf("%s: unexpected %T", f, o)
			}
		}
	}
	require.NotNil(t, m.deployment, "the Orrery Deployment")
	require.NotNil(t, m.statefulSet, "the Cortex StatefulSet")
	require.NotNil(t, m.pdb, "the PodDisruptionBudget")
	require.NotNil(t, m.secret, "the example Secret")
	return m
}

// container returns the named container or init container of a pod.
func container(t *testing.T, spec corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// unit is a systemd unit file: its directives by section, continuation
// lines joined.
type unit map[string]map[string][]string

// parseUnit reads a systemd unit file. A line ending in a backslash
// continues on the next one (systemd joins them with a space).
func parseUnit(path string) (unit, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	text := regexp.MustCompile(`\\\n\s*`).ReplaceAllString(string(b), " ")
	u := unit{}
	section := ""
	for n, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				return nil, fmt.Errorf("%s: line %d: not a directive: %q", path, n+1, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u, nil
}

// one returns the single value of a directive.
func (u unit) one(t *testing.T, section, key string) string {
	t.Helper()
	v := u[section][key]
	require.Len(t, v, 1, "[%s] %s", section, key)
	return v[0]
}

// splitCommand splits a command line as systemd does for the quoting the
// units use: words separated by spaces, "…" and '…' quoting. A $ is an
// error: systemd would expand it from the environment, and the units pass
// secrets through the environment only.
func splitCommand(s string) ([]string, error) {
	if strings.Contains(s, "$") {
		return nil, fmt.Errorf("command %q: $ expands environment variables in systemd; the units do not use it", s)
	}
	var words []string
	var cur strings.Builder
	in, quote := false, rune(0)
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command %q: unterminated quote", s)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// parseEnvFile reads KEY=VALUE lines, as systemd's EnvironmentFile.
func parseEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: line %d: not KEY=VALUE", path, n+1)
		}
		env[k] = v
	}
	return env, nil
}

// serverFlags returns the flag names `orrery server --help` lists.
func serverFlags(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(apptest.OrreryBinary(t), "server", "--help").CombinedOutput()
	require.NoError(t, err, "orrery server --help: %s", out)
	flags := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9][a-z0-9.-]*)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	require.True(t, flags["listen"] && flags["cortex.overrides-file"], "flags parsed from --help: %v", flags)
	return flags
}

// requireFlags checks that every --flag of an `orrery server` command line
// is one the binary accepts, and returns the flags' values.
func requireFlags(t *testing.T, known map[string]bool, args []string) map[string]string {
	t.Helper()
	require.Equal(t, "server", args[0], "args %v", args)
	values := map[string]string{}
	for _, a := range args[1:] {
		require.True(t, strings.HasPrefix(a, "--"), "argument %q: write flags as --name=value", a)
		name, v, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		require.True(t, known[name], "flag --%s does not exist in `orrery server --help`", name)
		values[name] = v
	}
	return values
}

// TestDeployKubernetesManifests decodes deploy/kubernetes strictly into the
// Kubernetes API types and checks what the deployment relies on: flags the
// binary accepts, probes and Service on the port the server listens on,
// every path the server writes on a writable volume under a read-only root
// filesystem, selectors that match, and one Secret for both pods.
func TestDeployKubernetesManifests(t *testing.T) {
	t.Run("strict decoding refuses unknown fields", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		require.NoError(t, os.WriteFile(bad, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1, replica: 2}\n"), 0o600))
		_, err := decodeManifests(bad)
		require.ErrorContains(t, err, `unknown field "spec.replica"`)
	})

	m := loadManifests(t)
	flags := serverFlags(t)
	d := m.deployment
	require.EqualValues(t, 3, *d.Spec.Replicas)
	require.Equal(t, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	require.Equal(t, d.Spec.Selector.MatchLabels, m.pdb.Spec.Selector.MatchLabels)
	require.Equal(t, 2, m.pdb.Spec.MinAvailable.IntValue())
	pod := d.Spec.Template.Spec
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.NotZero(t, *pod.SecurityContext.RunAsUser)

	checkOrrery := func(t *testing.T, pod corev1.PodSpec, c corev1.Container, want map[string]string) {
		values := requireFlags(t, flags, c.Args)
		for k, v := range want {
			require.Equal(t, v, values[k], "--%s", k)
		}
		require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
		require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem, "read-only root filesystem")
		require.Equal(t, []corev1.Capability{"ALL"}, c.SecurityContext.Capabilities.Drop)
		require.NotNil(t, c.Resources.Requests.Memory())

		// The port the server listens on is the container port the probes
		// and the Service use.
		_, port, _ := strings.Cut(values["listen"], ":")
		require.Len(t, c.Ports, 1)
		require.Equal(t, port, fmt.Sprint(c.Ports[0].ContainerPort))
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe, c.StartupProbe} {
			if p != nil {
				require.Equal(t, c.Ports[0].Name, p.HTTPGet.Port.String())
			}
		}

		// Files are read from and written to volumes: the root file
		// system is read-only.
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		mountOf := func(path string) corev1.VolumeMount {
			for _, vm := range c.VolumeMounts {
				if strings.HasPrefix(path, vm.MountPath+"/") || path == vm.MountPath {
					return vm
				}
			}
			t.Fatalf("%s is on no volume of container %s", path, c.Name)
			return corev1.VolumeMount{}
		}
		for _, f := range []string{"data-dir", "cortex.overrides-file"} {
			if values[f] != "" {
				vm := mountOf(values[f])
				require.False(t, vm.ReadOnly, "--%s is written", f)
				require.NotNil(t, volumes[vm.Name].EmptyDir, "--%s on an emptyDir", f)
			}
		}
		key := mountOf(values["secrets-key-file"])
		require.Equal(t, m.secret.Name, volumes[key.Name].Secret.SecretName)
		limits := mountOf(values["limits-file"])
		cm := m.configMaps[volumes[limits.Name].ConfigMap.Name]
		require.NotNil(t, cm, "the limits ConfigMap")
		require.Contains(t, cm.Data, filepath.Base(values["limits-file"]))
		sys, err := os.ReadFile(deployPath("systemd", "limits.yaml"))
		require.NoError(t, err)
		require.Equal(t, strings.SplitN(string(sys), "\n", 3)[2], cm.Data["limits.yaml"], "deploy/systemd/limits.yaml and the ConfigMap agree")

		// The environment the server reads comes from the Secret.
		for _, e := range c.Env {
			require.Equal(t, m.secret.Name, e.ValueFrom.SecretKeyRef.Name, e.Name)
			require.Contains(t, m.secret.StringData, e.ValueFrom.SecretKeyRef.Key, e.Name)
		}
	}
	t.Run("orrery deployment", func(t *testing.T) {
		c := container(t, pod, "orrery")
		checkOrrery(t, pod, c, map[string]string{"engine": "cortex", "cortex.url": "http://cortex:9009"})
		require.Equal(t, "/-/ready", c.ReadinessProbe.HTTPGet.Path)
		require.Equal(t, "/-/healthy", c.LivenessProbe.HTTPGet.Path)
		svc := m.services["orrery"]
		require.Equal(t, d.Spec.Selector.MatchLabels, svc.Spec.Selector)
		require.Equal(t, c.Ports[0].Name, svc.Spec.Ports[0].TargetPort.String())
	})

	t.Run("cortex with the overrides sidecar", func(t *testing.T) {
		s := m.statefulSet
		spec := s.Spec.Template.Spec
		require.Equal(t, s.Spec.Selector.MatchLabels, s.Spec.Template.Labels)
		require.Contains(t, m.services, s.Spec.ServiceName)
		require.Equal(t, corev1.ClusterIPNone, m.services[s.Spec.ServiceName].Spec.ClusterIP)
		side := container(t, spec, "orrery-overrides")
		require.Equal(t, corev1.ContainerRestartPolicyAlways, *side.RestartPolicy, "a native sidecar, started and probed before Cortex")
		require.NotNil(t, side.StartupProbe)
		require.Equal(t, "/-/ready", side.StartupProbe.HTTPGet.Path)
		checkOrrery(t, spec, side, map[string]string{"engine": "cortex"})

		// Cortex reads the file the sidecar writes, from deploy/cortex/cortex.yaml.
		cx := container(t, spec, "cortex")
		require.Equal(t, []string{"-target=all", "-config.file=/etc/cortex/cortex.yaml"}, cx.Args)
		cfg := cortexConfig(t)
		runtimeFile := cfg.get(t, "runtime_config", "file").(string)
		overrides := requireFlags(t, flags, side.Args)["cortex.overrides-file"]
		require.Equal(t, runtimeFile, overrides)
		mounts := map[string]corev1.VolumeMount{}
		for _, vm := range cx.VolumeMounts {
			mounts[vm.MountPath] = vm
		}
		require.Contains(t, mounts, filepath.Dir(runtimeFile))
		require.Contains(t, mounts, "/etc/cortex")
		for _, vm := range side.VolumeMounts {
			if vm.MountPath == filepath.Dir(runtimeFile) {
				require.Equal(t, mounts[vm.MountPath].Name, vm.Name, "the sidecar writes the volume Cortex reads")
			}
		}
		port := cfg.get(t, "server", "http_listen_port")
		require.EqualValues(t, port, cx.Ports[0].ContainerPort)
		require.Equal(t, fmt.Sprintf("http://localhost:%d", port), requireFlags(t, flags, side.Args)["cortex.url"])
		svc := m.services["cortex"]
		require.Equal(t, cx.Ports[0].Name, svc.Spec.Ports[0].TargetPort.String())
		require.EqualValues(t, port, svc.Spec.Ports[0].Port, "--cortex.url=http://cortex:%d of the Deployment", port)
	})
}

// TestDeploySystemdUnits checks the units' flags against the binary and has
// systemd-analyze verify them (with the binary's path substituted: verify
// wants an executable). Without systemd-analyze it fails: `make deps`
// installs it, so CI always verifies the units.
func TestDeploySystemdUnits(t *testing.T) {
	flags := serverFlags(t)
	units := []string{"orrery.service", "orrery-cortex-overrides.service"}
	for _, name := range units {
		u, err := parseUnit(deployPath("systemd", name))
		require.NoError(t, err)
		args, err := splitCommand(u.one(t, "Service", "ExecStart"))
		require.NoError(t, err)
		require.Equal(t, "/usr/local/bin/orrery", args[0])
		requireFlags(t, flags, args[1:])
		require.Equal(t, "/etc/orrery/orrery.env", u.one(t, "Service", "EnvironmentFile"))
	}
	env, err := parseEnvFile(deployPath("systemd", "orrery.env"))
	require.NoError(t, err)
	for _, k := range []string{"ORRERY_ADMIN_ACCESS_KEY_ID", "ORRERY_ADMIN_SECRET_ACCESS_KEY", "ORRERY_UI_ADMIN_PASSWORD"} {
		require.NotEmpty(t, env[k], k)
	}

	analyze := apptest.LookPath(t, "systemd-analyze", "systemd")
	dir := t.TempDir()
	for _, name := range units {
		b, err := os.ReadFile(deployPath("systemd", name))
		require.NoError(t, err)
		b = bytes.ReplaceAll(b, []byte("/usr/local/bin/orrery"), []byte(apptest.OrreryBinary(t)))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o600))
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, units[0]), filepath.Join(dir, units[1]))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "systemd-analyze verify: %s", out)
	require.Empty(t, strings.TrimSpace(string(out)), "systemd-analyze verify warns")
}

// cortexYAML is a Cortex configuration as a YAML tree.
type cortexYAML map[string]any

// get returns the value at a path of keys.
func (c cortexYAML) get(t *testing.T, path ...string) any {
	t.Helper()
	var v any = map[string]any(c)
	for _, k := range path {
		m, ok := v.(map[string]any)
		require.True(t, ok, "%s: not a mapping at %s", strings.Join(path, "."), k)
		v, ok = m[k]
		require.True(t, ok, "%s: no %s", strings.Join(path, "."), k)
	}
	return v
}

// cortexConfig returns deploy/cortex/cortex.yaml as written.
func cortexConfig(t *testing.T) cortexYAML {
	t.Helper()
	b, err := os.ReadFile(deployPath("cortex", "cortex.yaml"))
	require.NoError(t, err)
	return parseCortexYAML(t, b)
}

// parseCortexYAML decodes a Cortex configuration. Its mappings are plain
// map[string]any (yaml decodes nested mappings into the named type of the
// outer one).
func parseCortexYAML(t *testing.T, b []byte) cortexYAML {
	t.Helper()
	var c map[string]any
	require.NoError(t, yaml3.Unmarshal(b, &c))
	return c
}
