package deploy

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/amp"
	"github.com/stretchr/testify/require"
	yaml3 "go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"

	"github.com/orrery-dev/orrery/internal/apptest"
)

// TestDeployReferenceDeployment runs the reference deployment as written
// against a real PostgreSQL and a real Cortex, substituting only hosts,
// ports and paths (the substitution maps below say which):
//   - deploy/cortex/cortex.yaml parses in Cortex and agrees with the test
//     Cortex on every setting Orrery relies on;
//   - orrery.service's ExecStart, with orrery.env as its environment, as an
//     unprivileged user owning secrets.key and its StateDirectory, serves
//     /-/ready and creates a workspace through the AWS SDK's AMP client;
//     orrery-cortex-overrides.service writes a runtime configuration with
//     that workspace which Cortex loads;
//   - the Kubernetes Deployment's container, as its securityContext's user,
//     with the example Secret and the limits ConfigMap mounted, answers its probes and the AMP API, and the
//     Cortex pod's overrides sidecar writes a runtime configuration Cortex
//     loads;
//   - every server stops cleanly on SIGTERM.
func TestDeployReferenceDeployment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL, Cortex and four servers")
	}
	ctx := context.Background()
	m := loadManifests(t)
	pg := apptest.StartPostgres(t)
	db, err := url.Parse(pg.NewDatabase(t))
	require.NoError(t, err)
	cx := apptest.StartCortex(t)
	bin := apptest.OrreryBinary(t)
	key := make([]byte, 32) // As `head -c 32 /dev/urandom` makes it.
	_, err = rand.Read(key)
	require.NoError(t, err)

	t.Run("cortex configuration", func(t *testing.T) {
		testCortexConfig(t, cx)
	})

	// systemd: the units' User=orrery is nobody here. /etc/orrery holds
	// the files the units name, secrets.key owned by the user (mode 0600);
	// the StateDirectory= directories are the user's.
	sys := unitUser(t)
	etc := sys.dir(t, "")
	sys.owned(t, filepath.Join(etc, "secrets.key"), key)
	limits, err := os.ReadFile(deployPath("systemd", "limits.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(etc, "limits.yaml"), limits, 0o644))
	sysBin := filepath.Join(etc, "orrery")
	b, err := os.ReadFile(bin)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(sysBin, b, 0o755))
	env, err := parseEnvFile(deployPath("systemd", "orrery.env"))
	require.NoError(t, err)
	replicaAddr, writerAddr := apptest.FreeAddr(t), apptest.FreeAddr(t)
	systemdSubst := func(dataDir string) []string {
		return []string{
			"/usr/local/bin/orrery", sysBin,
			"http://cortex.internal:9009", cx.URL(),
			"postgres.internal:5432/orrery", db.Host + db.Path,
			"/etc/orrery/", etc + "/",
			"/var/lib/orrery", dataDir,
			"/var/lib/cortex-runtime/runtime.yaml", cx.RuntimeConfig,
			"0.0.0.0:9090", replicaAddr,
			"127.0.0.1:9091", writerAddr,
		}
	}
	var ws1 string
	t.Run("systemd", func(t *testing.T) {
		// Every substitution applies to some unit: none is stale.
		var lines string
		for _, name := range []string{"orrery.service", "orrery-cortex-overrides.service"} {
			u, err := parseUnit(deployPath("systemd", name))
			require.NoError(t, err)
			require.Equal(t, "orrery", u.one(t, "Service", "User"), name)
			lines += u.one(t, "Service", "ExecStart") + "\n"
		}
		subst := systemdSubst("")
		for i := 0; i < len(subst); i += 2 {
			require.Contains(t, lines, subst[i], "substitution %q matches nothing", subst[i])
		}

		replica := runUnit(t, "orrery.service", env, systemdSubst(sys.stateDir(t, sys.dir(t, etc))), replicaAddr, sys)
		created, err := ampClient(replicaAddr, env["ORRERY_ADMIN_ACCESS_KEY_ID"], env["ORRERY_ADMIN_SECRET_ACCESS_KEY"]).
			CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("systemd")})
		require.NoError(t, err)
		ws1 = aws.ToString(created.WorkspaceId)

		sys.stateDir(t, filepath.Dir(cx.RuntimeConfig)) // StateDirectory=cortex-runtime
		writer := runUnit(t, "orrery-cortex-overrides.service", env, systemdSubst(sys.stateDir(t, sys.dir(t, etc))), writerAddr, sys)
		waitRuntimeConfig(t, cx, ws1)
		writer.Stop()
		replica.Stop()
	})

	t.Run("kubernetes", func(t *testing.T) {
		secret := map[string]string{"secrets.key": string(key)}
		for k, v := range m.secret.StringData {
			secret[k] = v
		}
		// One Secret for both: the example Secret and the env file name the
		// same admin key, so that replicas of both kinds share the catalog.
		require.Equal(t, env["ORRERY_ADMIN_ACCESS_KEY_ID"], secret["admin-access-key-id"])
		require.Equal(t, env["ORRERY_ADMIN_SECRET_ACCESS_KEY"], secret["admin-secret-access-key"])
		require.Equal(t, env["ORRERY_UI_ADMIN_PASSWORD"], secret["ui-admin-password"])
		hosts := []string{
			"http://cortex:9009", cx.URL(),
			"http://localhost:9009", cx.URL(),
			"@postgres:5432/orrery", "@" + db.Host + db.Path,
		}
		deployment := m.deployment.Spec.Template.Spec
		addr, replica := runContainer(t, m, deployment, container(t, deployment, "orrery"), secret, hosts, nil)
		created, err := ampClient(addr, secret["admin-access-key-id"], secret["admin-secret-access-key"]).
			CreateWorkspace(ctx, &amp.CreateWorkspaceInput{Alias: aws.String("kubernetes")})
		require.NoError(t, err)
		ws2 := aws.ToString(created.WorkspaceId)

		// The sidecar's runtime volume is the test Cortex's directory, whose
		// runtime.yaml is Cortex's runtime_config.file. The file is written
		// before the sidecar's startup probe passes, so Cortex, started
		// after it, finds it (removed here: Cortex keeps what it loaded).
		cortexPod := m.statefulSet.Spec.Template.Spec
		require.Equal(t, "runtime.yaml", filepath.Base(cx.RuntimeConfig))
		require.NoError(t, os.Remove(cx.RuntimeConfig))
		_, sidecar := runContainer(t, m, cortexPod, container(t, cortexPod, "orrery-overrides"), secret, hosts,
			map[string]string{"runtime": filepath.Dir(cx.RuntimeConfig)})
		written, err := os.ReadFile(cx.RuntimeConfig)
		require.NoError(t, err, "the overrides file is written before the startup probe passes")
		require.Contains(t, string(written), ws2)
		waitRuntimeConfig(t, cx, ws1, ws2)
		sidecar.Stop()
		replica.Stop()
	})
}

// testCortexConfig checks deploy/cortex/cortex.yaml with Cortex itself:
// it parses strictly (-print.config fails on unknown fields), and every
// setting Orrery relies on has the value the test Cortex runs with.
func testCortexConfig(t *testing.T, cx *apptest.Cortex) {
	cmd := exec.Command(apptest.CortexBinary(t), "-config.file="+deployPath("cortex", "cortex.yaml"), "-print.config")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "cortex -print.config: %s", stderr.String())
	require.NotContains(t, stderr.String(), "error")
	deployed := parseCortexYAML(t, out)
	code, body := apptest.Get(t, cx.URL()+"/config")
	require.Equal(t, http.StatusOK, code, "%s", body)
	tested := parseCortexYAML(t, body)

	same := [][]string{
		{"auth_enabled"},
		{"distributor", "shard_by_all_labels"},
		{"distributor", "ha_tracker", "enable_ha_tracker"},
		{"distributor", "ha_tracker", "kvstore", "store"},
		{"ruler", "enable_api"},
		{"alertmanager", "enable_api"},
		{"server", "grpc_server_max_recv_msg_size"},
		{"server", "grpc_server_max_send_msg_size"},
		{"ingester_client", "grpc_client_config", "max_recv_msg_size"},
		{"ingester_client", "grpc_client_config", "max_send_msg_size"},
		{"name_validation_scheme"},
	}
	// The default limits, but for the ingestion rate strategy: global in
	// production (shared by the distributors), local in the test's single
	// process, where both mean the same.
	var limits map[string]any
	require.NoError(t, yaml3.Unmarshal([]byte(apptest.CortexLimits), &limits))
	for k := range limits {
		if k != "ingestion_rate_strategy" {
			same = append(same, []string{"limits", k})
		}
	}
	for _, path := range same {
		require.Equal(t, tested.get(t, path...), deployed.get(t, path...), "%s", strings.Join(path, "."))
	}
	require.Equal(t, "global", deployed.get(t, "limits", "ingestion_rate_strategy"))
	require.Equal(t, true, deployed.get(t, "limits", "enable_native_histograms"))
	require.Equal(t, true, deployed.get(t, "auth_enabled"))

	// The runtime configuration is a file Orrery writes; the ruler sends
	// alerts to Cortex's own Alertmanager.
	require.Equal(t, cortexConfig(t).get(t, "runtime_config", "file"), deployed.get(t, "runtime_config", "file"))
	require.Equal(t, "filesystem", deployed.get(t, "runtime_config", "backend"))
	for _, c := range []cortexYAML{deployed, tested} {
		am, err := url.Parse(c.get(t, "ruler", "alertmanager_url").(string))
		require.NoError(t, err)
		ext, err := url.Parse(c.get(t, "alertmanager", "external_url").(string))
		require.NoError(t, err)
		require.Equal(t, "/alertmanager", am.Path)
		require.Equal(t, am.Path, ext.Path)
		require.Equal(t, fmt.Sprint(c.get(t, "server", "http_listen_port")), am.Port())
	}
}

// runUnit runs a systemd unit's ExecStart as written, with the pairs of
// subst (old, new) replaced, in the environment of its EnvironmentFile
// (env) and the working directory systemd gives system services, and waits
// until it serves /-/ready on addr.
func runUnit(t *testing.T, name string, env map[string]string, subst []string, addr string, user containerUser) *apptest.Process {
	t.Helper()
	u, err := parseUnit(deployPath("systemd", name))
	require.NoError(t, err)
	exec0 := u.one(t, "Service", "ExecStart")
	args, err := splitCommand(strings.NewReplacer(subst...).Replace(exec0))
	require.NoError(t, err)
	requireSubstituted(t, args)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.SysProcAttr = user.attr()
	proc := apptest.StartCommand(t, name, cmd)
	user.require(t, cmd)
	return waitReady(t, proc, addr, "/-/ready")
}

// require checks that a started command runs as the user.
func (u containerUser) require(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if !u.as {
		return
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	require.NoError(t, err)
	require.Regexp(t, fmt.Sprintf(`(?m)^Uid:\s+%d\s`, u.uid), string(status), "%s runs as uid %d", cmd.Path, u.uid)
}

// unitUser is the units' User=orrery: nobody, when the test runs as root.
func unitUser(t *testing.T) containerUser {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: the units run as the test's user")
		return containerUser{}
	}
	nobody, err := osuser.Lookup("nobody")
	require.NoError(t, err)
	uid, err := strconv.Atoi(nobody.Uid)
	require.NoError(t, err)
	gid, err := strconv.Atoi(nobody.Gid)
	require.NoError(t, err)
	return containerUser{uid: uint32(uid), gid: uint32(gid), as: true}
}

// owned writes a file only the user may read (mode 0600).
func (u containerUser) owned(t *testing.T, path string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, 0o600))
	if u.as {
		require.NoError(t, os.Chown(path, int(u.uid), int(u.gid)))
	}
}

// stateDir makes a directory the user's, as systemd's StateDirectory=
// (mode 0755), its parent reachable, and returns it.
func (u containerUser) stateDir(t *testing.T, dir string) string {
	t.Helper()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o755))
	if u.as {
		require.NoError(t, os.Chown(dir, int(u.uid), int(u.gid)))
	}
	return dir
}

// runContainer runs an Orrery container of a pod as written: its args,
// $(VAR) expanded from its environment, the environment from the Secret
// (secret: the example's values and secrets.key), its volumes as
// directories (secrets and ConfigMaps written out, emptyDirs fresh or
// given by volume name in dirs), every mount path replaced by its
// directory, the listen address by a free one and the pairs of hosts.
// Run by root, as the tests are, it runs as the securityContext's user
// with the file ownership and modes the kubelet gives volumes, so that
// only the volumes meant to be written are writable, and a Secret the
// user cannot read fails as it would in a cluster. It waits until every
// probe of the container answers 200 and returns the address the server
// listens on.
func runContainer(t *testing.T, m manifests, pod corev1.PodSpec, c corev1.Container, secret map[string]string, hosts []string, dirs map[string]string) (string, *apptest.Process) {
	t.Helper()
	hostReplacer := strings.NewReplacer(hosts...)
	env := map[string]string{}
	cmdEnv := []string{"PATH=/usr/bin:/bin"}
	for _, e := range c.Env {
		v, ok := secret[e.ValueFrom.SecretKeyRef.Key]
		require.True(t, ok, "env %s: the Secret has no %s", e.Name, e.ValueFrom.SecretKeyRef.Key)
		v = hostReplacer.Replace(v)
		env[e.Name] = v
		cmdEnv = append(cmdEnv, e.Name+"="+v)
	}
	user := podUser(t, pod, c)
	base := user.dir(t, "")

	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	subst := append([]string(nil), hosts...)
	for _, vm := range c.VolumeMounts {
		v, ok := volumes[vm.Name]
		require.True(t, ok, "mount %s: no volume", vm.Name)
		dir := dirs[vm.Name]
		if dir == "" {
			dir = user.dir(t, base)
		}
		switch {
		case v.Secret != nil:
			require.Equal(t, m.secret.Name, v.Secret.SecretName)
			for _, it := range v.Secret.Items {
				user.file(t, filepath.Join(dir, it.Path), []byte(secret[it.Key]), v.Secret.DefaultMode)
			}
		case v.ConfigMap != nil:
			cm, ok := m.configMaps[v.ConfigMap.Name]
			require.True(t, ok, "volume %s: no ConfigMap %s", vm.Name, v.ConfigMap.Name)
			for k, data := range cm.Data {
				user.file(t, filepath.Join(dir, k), []byte(data), v.ConfigMap.DefaultMode)
			}
		case v.EmptyDir != nil:
			user.emptyDir(t, dir)
		default:
			t.Fatalf("volume %s: a kind the test does not know", vm.Name)
		}
		subst = append(subst, vm.MountPath, dir)
	}
	addr := apptest.FreeAddr(t)
	require.Len(t, c.Ports, 1)
	subst = append(subst, fmt.Sprintf("0.0.0.0:%d", c.Ports[0].ContainerPort), addr)

	replacer := strings.NewReplacer(subst...)
	var args []string
	for _, a := range c.Args {
		a = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).ReplaceAllStringFunc(a, func(ref string) string {
			v, ok := env[ref[2:len(ref)-1]]
			require.True(t, ok, "%s: %s is not in the container's environment", a, ref)
			return v
		})
		args = append(args, replacer.Replace(a))
	}
	requireSubstituted(t, args)
	// The image's binary, where the container's user may run it.
	b, err := os.ReadFile(apptest.OrreryBinary(t))
	require.NoError(t, err)
	bin := filepath.Join(base, "orrery")
	require.NoError(t, os.WriteFile(bin, b, 0o755))
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.Env = cmdEnv
	cmd.SysProcAttr = user.attr()
	proc := apptest.StartCommand(t, c.Name, cmd)
	user.require(t, cmd)
	var paths []string
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p != nil {
			paths = append(paths, p.HTTPGet.Path)
		}
	}
	require.NotEmpty(t, paths, "container %s has no probe", c.Name)
	return addr, waitReady(t, proc, addr, paths...)
}

// containerUser is the user a container runs as, and the pod's fsGroup.
// as is false when the test does not run as root and cannot switch.
type containerUser struct {
	uid, gid uint32
	fsGroup  *int64
	as       bool
}

// podUser returns the user of a container: its securityContext's, or the
// pod's. The manifests run nothing as root.
func podUser(t *testing.T, pod corev1.PodSpec, c corev1.Container) containerUser {
	t.Helper()
	var u containerUser
	var uid, gid *int64
	if sc := pod.SecurityContext; sc != nil {
		uid, gid, u.fsGroup = sc.RunAsUser, sc.RunAsGroup, sc.FSGroup
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = sc.RunAsGroup
		}
	}
	require.NotNil(t, uid, "container %s: runAsUser", c.Name)
	require.NotZero(t, *uid, "container %s runs as root", c.Name)
	u.uid = uint32(*uid)
	if gid != nil {
		u.gid = uint32(*gid)
	}
	u.as = os.Geteuid() == 0
	if !u.as {
		t.Logf("not root: container %s runs as the test's user, not as uid %d", c.Name, u.uid)
	}
	return u
}

// attr returns the process attributes running as the user.
func (u containerUser) attr() *syscall.SysProcAttr {
	if !u.as {
		return nil
	}
	cred := &syscall.Credential{Uid: u.uid, Gid: u.gid}
	if u.fsGroup != nil {
		cred.Groups = []uint32{uint32(*u.fsGroup)}
	}
	return &syscall.SysProcAttr{Credential: cred}
}

// dir makes a directory, under parent or the temporary directory, that
// anyone may traverse, owned by root as the kubelet's volume directories.
func (u containerUser) dir(t *testing.T, parent string) string {
	t.Helper()
	d, err := os.MkdirTemp(parent, "orrery-deploy-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	require.NoError(t, os.Chmod(d, 0o755))
	return d
}

// file writes a Secret's or ConfigMap's file as the kubelet does: owned
// by root, with the volume's defaultMode (0644 if unset), and with an
// fsGroup, group-owned by it and group-readable.
func (u containerUser) file(t *testing.T, path string, data []byte, defaultMode *int32) {
	t.Helper()
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode)
	}
	require.NoError(t, os.WriteFile(path, data, 0o600))
	if u.as && u.fsGroup != nil {
		require.NoError(t, os.Chown(path, 0, int(*u.fsGroup)))
		mode |= 0o440
	}
	require.NoError(t, os.Chmod(path, mode))
}

// emptyDir makes a directory an emptyDir as the kubelet does: writable by
// anyone (mode 0777). An existing directory given for it (the test
// Cortex's) and its parent become reachable.
func (u containerUser) emptyDir(t *testing.T, dir string) {
	t.Helper()
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	require.NoError(t, os.Chmod(dir, 0o777))
}

// requireSubstituted fails if a command line still names a production
// host, path or address: the substitutions missed it.
func requireSubstituted(t *testing.T, args []string) {
	t.Helper()
	line := strings.Join(args, " ")
	for _, s := range []string{"/etc/", "/var/", "/usr/local/", ".internal", "0.0.0.0", "localhost", "//cortex:", "@postgres:"} {
		require.NotContains(t, line, s, "not substituted")
	}
}

// waitReady waits until every path answers 200 on addr. It polls every few
// milliseconds, as a prober that catches the first moment the server
// answers would.
func waitReady(t *testing.T, p *apptest.Process, addr string, paths ...string) *apptest.Process {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if p.Exited() {
			t.Fatalf("exited at start:\n%s", p.Output())
		}
		err := get200(addr, paths)
		if err == nil {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within 60s: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get200 GETs every path on addr and returns an error unless all answer 200.
func get200(addr string, paths []string) error {
	for _, path := range paths {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
	}
	return nil
}

// waitRuntimeConfig waits until Cortex has loaded a runtime configuration
// with overrides for every workspace.
func waitRuntimeConfig(t *testing.T, cx *apptest.Cortex, workspaces ...string) {
	t.Helper()
	apptest.Eventually(t, 30*time.Second, func() error {
		_, body := apptest.Get(t, cx.URL()+"/runtime_config")
		var rc struct {
			Overrides map[string]map[string]any `yaml:"overrides"`
		}
		if err := yaml3.Unmarshal(body, &rc); err != nil {
			return fmt.Errorf("cortex /runtime_config: %w", err)
		}
		for _, ws := range workspaces {
			o, ok := rc.Overrides[ws]
			if !ok {
				return fmt.Errorf("cortex has not loaded overrides for %s:\n%s", ws, body)
			}
			if o["enable_native_histograms"] != true {
				return fmt.Errorf("overrides of %s: %v", ws, o)
			}
		}
		return nil
	})
}

// ampClient is the AWS SDK's AMP client for an Orrery replica.
func ampClient(addr, keyID, secret string) *amp.Client {
	return amp.New(amp.Options{BaseEndpoint: aws.String("http://" + addr), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(keyID, secret, "")})
}
