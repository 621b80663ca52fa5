package test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/thind-storage/thind/csi"
)

// volumeSnapshotClass is snapshot.storage.k8s.io/v1 VolumeSnapshotClass,
// whose Go type lives in external-snapshotter's client, not k8s.io/api;
// its fields as the CRD defines them.
type volumeSnapshotClass struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Driver            string            `json:"driver"`
	DeletionPolicy    string            `json:"deletionPolicy"`
	Parameters        map[string]string `json:"parameters,omitempty"`
}

// snapshotMetadataService is cbt.storage.k8s.io/v1alpha1
// SnapshotMetadataService, the object external-snapshot-metadata
// publishes its address by; its Go type lives in that project, not
// k8s.io/api. Its fields as the CRD defines them.
type snapshotMetadataService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		Address  string `json:"address"`
		CACert   []byte `json:"caCert"`
		Audience string `json:"audience"`
	} `json:"spec"`
}

// manifests are deploy/kubernetes's objects, decoded strictly.
type manifests struct {
	namespaces      []corev1.Namespace
	serviceAccounts []corev1.ServiceAccount
	clusterRoles    []rbacv1.ClusterRole
	clusterBindings []rbacv1.ClusterRoleBinding
	roles           []rbacv1.Role
	bindings        []rbacv1.RoleBinding
	drivers         []storagev1.CSIDriver
	classes         []storagev1.StorageClass
	snapClasses     []volumeSnapshotClass
	services        []corev1.Service
	metadataSvcs    []snapshotMetadataService
	deployments     []appsv1.Deployment
	daemonSets      []appsv1.DaemonSet
}

// decodeInto decodes one document strictly (an unknown or misspelt field
// is an error) and appends it to list.
func decodeInto[T any](doc []byte, list *[]T) error {
	var o T
	if err := yaml.UnmarshalStrict(doc, &o); err != nil {
		return err
	}
	*list = append(*list, o)
	return nil
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	m := &manifests{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			where := fmt.Sprintf("%s document %d", filepath.Base(f), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				err = decodeInto(doc, &m.namespaces)
			case "v1 Service":
				err = decodeInto(doc, &m.services)
			case "cbt.storage.k8s.io/v1alpha1 SnapshotMetadataService":
				err = decodeInto(doc, &m.metadataSvcs)
			case "v1 ServiceAccount":
				err = decodeInto(doc, &m.serviceAccounts)
			case "rbac.authorization.k8s.io/v1 ClusterRole":
				err = decodeInto(doc, &m.clusterRoles)
			case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
				err = decodeInto(doc, &m.clusterBindings)
			case "rbac.authorization.k8s.io/v1 Role":
				err = decodeInto(doc, &m.roles)
			case "rbac.authorization.k8s.io/v1 RoleBinding":
				err = decodeInto(doc, &m.bindings)
			case "storage.k8s.io/v1 CSIDriver":
				err = decodeInto(doc, &m.drivers)
			case "storage.k8s.io/v1 StorageClass":
				err = decodeInto(doc, &m.classes)
			case "snapshot.storage.k8s.io/v1 VolumeSnapshotClass":
				err = decodeInto(doc, &m.snapClasses)
			case "apps/v1 Deployment":
				err = decodeInto(doc, &m.deployments)
			case "apps/v1 DaemonSet":
				err = decodeInto(doc, &m.daemonSets)
			default:
				t.Fatalf("%s: kind %q of %q has no decoder in this test", where, tm.Kind, tm.APIVersion)
			}
			if err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

// TestManifestsDecodeStrictly: a misspelt field fails the decoder the
// manifests test relies on.
func TestManifestsDecodeStrictly(t *testing.T) {
	var ds []appsv1.DaemonSet
	err := decodeInto([]byte("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n"), &ds)
	if err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
}

// container returns the pod's container named name.
func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %q", name)
	return corev1.Container{}
}

// flag returns the value of --name=value in args.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// mountOf returns where c mounts the volume that holds path, and that
// volume's name.
func mountOf(c corev1.Container, path string) (volume, mountPath string) {
	for _, m := range c.VolumeMounts {
		if path == m.MountPath || strings.HasPrefix(path, m.MountPath+"/") {
			return m.Name, m.MountPath
		}
	}
	return "", ""
}

func hostPath(pod corev1.PodSpec, volume string) string {
	for _, v := range pod.Volumes {
		if v.Name == volume && v.HostPath != nil {
			return v.HostPath.Path
		}
	}
	return ""
}

// checkPlugin checks a thind container of a pod: its mode, that its
// node id is the node's name (so the topology value is what the scheduler
// matches, and ids name the node), and that every sidecar dials its socket
// through the same volume. It returns the socket's volume. The router
// has no node and no pool.
func checkPlugin(t *testing.T, what string, pod corev1.PodSpec, name string, mode csi.Mode, sidecars ...string) string {
	t.Helper()
	thind := container(t, pod, name)
	if len(thind.Args) == 0 || thind.Args[0] != "csi" {
		t.Errorf("%s: %s args %v: want the csi subcommand", what, name, thind.Args)
	}
	if m, _ := flag(thind.Args, "mode"); m != string(mode) {
		t.Errorf("%s: --mode=%q, want %q", what, m, mode)
	}
	if mode != csi.ModeRouter {
		checkNodeID(t, what, pod, thind)
	}
	ep, _ := flag(thind.Args, "endpoint")
	sock, ok := strings.CutPrefix(ep, "unix://")
	if !ok {
		t.Fatalf("%s: --endpoint=%q, want unix:///...", what, ep)
	}
	vol, mnt := mountOf(thind, sock)
	if vol == "" {
		t.Fatalf("%s: the socket %s is on no volume of %s", what, sock, name)
	}
	for _, sc := range sidecars {
		c := container(t, pod, sc)
		addr, _ := flag(c.Args, "csi-address")
		v, m := mountOf(c, addr)
		if v != vol || strings.TrimPrefix(addr, m) != strings.TrimPrefix(sock, mnt) {
			t.Errorf("%s: %s dials %s on volume %q, but %s serves %s on volume %q", what, sc, addr, v, name, sock, vol)
		}
	}
	return vol
}

// checkNodeID checks that a node's thind container is told its node's
// name and its pool.
func checkNodeID(t *testing.T, what string, pod corev1.PodSpec, thind corev1.Container) {
	t.Helper()
	if id, _ := flag(thind.Args, "node-id"); id != "$(NODE_ID)" {
		t.Errorf("%s: --node-id=%q, want $(NODE_ID)", what, id)
	}
	nodeName := false
	for _, e := range thind.Env {
		if e.Name == "NODE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			nodeName = true
		}
	}
	if !nodeName {
		t.Errorf("%s: NODE_ID is not the node's name (spec.nodeName)", what)
	}
	if dir, _ := flag(thind.Args, "data-dir"); dir == "" || hostPath(pod, func() string { v, _ := mountOf(thind, dir+"/control.sock"); return v }()) != dir {
		t.Errorf("%s: --data-dir=%q is not the host's pool directory mounted at the same path", what, dir)
	}
}

// envFromNodeName reports whether c has the variable name set to its
// node's name.
func envFromNodeName(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	})
}

// tlsSecret is the secret the --tls-cert, --tls-key and --tls-ca files
// of c all come from, "" if they do not.
func tlsSecret(t *testing.T, pod corev1.PodSpec, c corev1.Container) string {
	t.Helper()
	secret := ""
	for i, f := range []string{"tls-cert", "tls-key", "tls-ca"} {
		path, _ := flag(c.Args, f)
		vol, _ := mountOf(c, path)
		name := ""
		for _, v := range pod.Volumes {
			if v.Name == vol && v.Secret != nil {
				name = v.Secret.SecretName
			}
		}
		if name == "" || (i > 0 && name != secret) {
			return ""
		}
		secret = name
	}
	return secret
}

// can reports whether the service account ns/sa may verb group/resource,
// through a ClusterRole or a Role of ns bound to it.
func can(m *manifests, ns, sa, group, resource, verb string) bool {
	subject := func(subs []rbacv1.Subject) bool {
		return slices.ContainsFunc(subs, func(s rbacv1.Subject) bool {
			return s.Kind == "ServiceAccount" && s.Name == sa && s.Namespace == ns
		})
	}
	allows := func(rules []rbacv1.PolicyRule) bool {
		return slices.ContainsFunc(rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb)
		})
	}
	for _, b := range m.clusterBindings {
		for _, r := range m.clusterRoles {
			if subject(b.Subjects) && b.RoleRef.Kind == "ClusterRole" && b.RoleRef.Name == r.Name && allows(r.Rules) {
				return true
			}
		}
	}
	for _, b := range m.bindings {
		for _, r := range m.roles {
			if b.Namespace == ns && r.Namespace == ns && subject(b.Subjects) && b.RoleRef.Kind == "Role" && b.RoleRef.Name == r.Name && allows(r.Rules) {
				return true
			}
		}
	}
	return false
}

func TestKubernetesManifestsAgree(t *testing.T) {
	m := loadManifests(t)
	if len(m.drivers) != 1 || len(m.classes) != 1 || len(m.snapClasses) != 1 || len(m.deployments) != 1 || len(m.daemonSets) != 1 {
		t.Fatalf("want one CSIDriver, StorageClass, VolumeSnapshotClass, Deployment and DaemonSet, got %d %d %d %d %d",
			len(m.drivers), len(m.classes), len(m.snapClasses), len(m.deployments), len(m.daemonSets))
	}
	drv := m.drivers[0]
	if drv.Name != csi.DriverName || drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired ||
		drv.Spec.StorageCapacity == nil || !*drv.Spec.StorageCapacity {
		t.Errorf("CSIDriver %s: want %s, no attach, storage capacity", drv.Name, csi.DriverName)
	}
	sc := m.classes[0]
	if sc.Provisioner != csi.DriverName || sc.VolumeBindingMode == nil || *sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer ||
		sc.AllowVolumeExpansion == nil || !*sc.AllowVolumeExpansion {
		t.Errorf("StorageClass %s: want provisioner %s, WaitForFirstConsumer, allowVolumeExpansion", sc.Name, csi.DriverName)
	}
	for k := range sc.Parameters {
		if !strings.HasPrefix(k, "csi.storage.k8s.io/") && !slices.Contains([]string{csi.ParamFSType, csi.ParamReadOnly, csi.ParamOverprovisioning}, k) {
			t.Errorf("StorageClass parameter %q: the driver refuses it", k)
		}
	}
	for _, at := range sc.AllowedTopologies {
		for _, e := range at.MatchLabelExpressions {
			if e.Key != csi.TopologyKey {
				t.Errorf("StorageClass allowedTopologies key %q, want %s", e.Key, csi.TopologyKey)
			}
		}
	}
	if vsc := m.snapClasses[0]; vsc.Driver != csi.DriverName || vsc.DeletionPolicy != "Delete" {
		t.Errorf("VolumeSnapshotClass %s: driver %q policy %q", vsc.Name, vsc.Driver, vsc.DeletionPolicy)
	}

	router := m.deployments[0].Spec.Template.Spec
	checkPlugin(t, "router Deployment", router, "thind-csi", csi.ModeRouter, "csi-resizer", "csi-snapshot-metadata")
	checkSnapshotMetadata(t, m)

	node := m.daemonSets[0].Spec.Template.Spec
	checkPlugin(t, "node DaemonSet", node, "thind-csi-controller", csi.ModeController, "csi-provisioner", "csi-snapshotter")
	checkDistributed(t, m, node, router)
	vol := checkPlugin(t, "node DaemonSet", node, "thind-csi", csi.ModeNode, "node-driver-registrar")
	thind := container(t, node, "thind-csi")
	if p := thind.SecurityContext; p == nil || p.Privileged == nil || !*p.Privileged {
		t.Error("node DaemonSet: thind-csi is not privileged")
	}
	reg := container(t, node, "node-driver-registrar")
	ep, _ := flag(thind.Args, "endpoint")
	_, mnt := mountOf(thind, strings.TrimPrefix(ep, "unix://"))
	wantReg := filepath.Join(hostPath(node, vol), strings.TrimPrefix(strings.TrimPrefix(ep, "unix://"), mnt))
	if got, _ := flag(reg.Args, "kubelet-registration-path"); got != wantReg || hostPath(node, vol) != "/var/lib/kubelet/plugins/"+csi.DriverName {
		t.Errorf("registrar registers %q, want %q under /var/lib/kubelet/plugins/%s", got, wantReg, csi.DriverName)
	}
	bidir := false
	for _, mt := range thind.VolumeMounts {
		if mt.MountPath == "/var/lib/kubelet" && mt.MountPropagation != nil && *mt.MountPropagation == corev1.MountPropagationBidirectional {
			bidir = true
		}
	}
	if !bidir {
		t.Error("node DaemonSet: /var/lib/kubelet is not mounted with Bidirectional propagation (mounts would not reach pods)")
	}

	// Service accounts, roles and bindings name each other.
	accounts := map[string]bool{}
	for _, sa := range m.serviceAccounts {
		accounts[sa.Namespace+"/"+sa.Name] = true
	}
	for _, w := range []struct {
		what string
		pod  corev1.PodSpec
		ns   string
	}{{"router", router, m.deployments[0].Namespace}, {"node", node, m.daemonSets[0].Namespace}} {
		if !accounts[w.ns+"/"+w.pod.ServiceAccountName] {
			t.Errorf("%s: service account %s/%s is not defined", w.what, w.ns, w.pod.ServiceAccountName)
		}
		if !slices.ContainsFunc(m.namespaces, func(n corev1.Namespace) bool { return n.Name == w.ns }) {
			t.Errorf("%s: namespace %s is not defined", w.what, w.ns)
		}
	}
	for _, b := range m.clusterBindings {
		if !slices.ContainsFunc(m.clusterRoles, func(r rbacv1.ClusterRole) bool { return r.Name == b.RoleRef.Name }) {
			t.Errorf("ClusterRoleBinding %s: no ClusterRole %s", b.Name, b.RoleRef.Name)
		}
		for _, s := range b.Subjects {
			if !accounts[s.Namespace+"/"+s.Name] {
				t.Errorf("ClusterRoleBinding %s: no service account %s/%s", b.Name, s.Namespace, s.Name)
			}
		}
	}
	for _, b := range m.bindings {
		if !slices.ContainsFunc(m.roles, func(r rbacv1.Role) bool { return r.Name == b.RoleRef.Name && r.Namespace == b.Namespace }) {
			t.Errorf("RoleBinding %s: no Role %s in %s", b.Name, b.RoleRef.Name, b.Namespace)
		}
	}
}

// checkDistributed checks the layout of many storage nodes: each node's
// provisioner and snapshotter run in their distributed modes beside its
// controller, with the permissions that needs; the router reaches the
// controllers at the port they serve it on, with mutual TLS from one
// secret, and may read what it resolves nodes with.
func checkDistributed(t *testing.T, m *manifests, node, router corev1.PodSpec) {
	t.Helper()
	prov := container(t, node, "csi-provisioner")
	for _, want := range []string{"--node-deployment=true", "--feature-gates=Topology=true", "--enable-capacity", "--immediate-topology=false", "--strict-topology"} {
		if !slices.Contains(prov.Args, want) {
			t.Errorf("csi-provisioner lacks %s", want)
		}
	}
	snap := container(t, node, "csi-snapshotter")
	if !slices.Contains(snap.Args, "--node-deployment") {
		t.Error("csi-snapshotter lacks --node-deployment (distributed snapshotting)")
	}
	for _, c := range []corev1.Container{prov, snap} {
		if !envFromNodeName(c, "NODE_NAME") {
			t.Errorf("%s: NODE_NAME is not the node's name (spec.nodeName)", c.Name)
		}
		if _, ok := flag(c.Args, "leader-election"); ok || slices.Contains(c.Args, "--leader-election") {
			t.Errorf("%s: leader election, but each node's is the only one for its node", c.Name)
		}
	}
	ns, sa := m.daemonSets[0].Namespace, node.ServiceAccountName
	for _, p := range []struct{ group, resource, verb string }{
		{"", "nodes", "get"}, {"", "persistentvolumeclaims", "watch"}, {"", "persistentvolumes", "create"}, {"", "persistentvolumes", "delete"},
		{"storage.k8s.io", "csistoragecapacities", "create"}, {"apps", "daemonsets", "get"}, {"", "pods", "get"},
		{"snapshot.storage.k8s.io", "volumesnapshotcontents", "create"}, {"snapshot.storage.k8s.io", "volumesnapshotcontents/status", "patch"},
	} {
		if !can(m, ns, sa, p.group, p.resource, p.verb) {
			t.Errorf("node service account %s cannot %s %s/%s", sa, p.verb, p.group, p.resource)
		}
	}

	ctl := container(t, node, "thind-csi-controller")
	listen, _ := flag(ctl.Args, "listen")
	_, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("thind-csi-controller --listen=%q: %v", listen, err)
	}
	if !slices.ContainsFunc(ctl.Ports, func(p corev1.ContainerPort) bool {
		return fmt.Sprint(p.ContainerPort) == port && fmt.Sprint(p.HostPort) == port
	}) {
		t.Errorf("thind-csi-controller listens on %s but has no hostPort %s there for the router", listen, port)
	}
	rt := container(t, router, "thind-csi")
	addr, _ := flag(rt.Args, "node-address")
	if _, rport, err := net.SplitHostPort(addr); err != nil || rport != port || !strings.Contains(addr, csi.PlaceInternalIP) && !strings.Contains(addr, csi.PlaceNode) {
		t.Errorf("router --node-address=%q: want %s or %s at the controllers' port %s", addr, csi.PlaceInternalIP, csi.PlaceNode, port)
	}
	cs, rs := tlsSecret(t, node, ctl), tlsSecret(t, router, rt)
	if cs == "" || cs != rs {
		t.Errorf("mutual TLS: the controllers' files come from secret %q, the router's from %q: want one secret for all three files of both", cs, rs)
	}
	if name, _ := flag(rt.Args, "tls-server-name"); name == "" {
		t.Error("router: no --tls-server-name, but one secret cannot name every node")
	}
	rsa := router.ServiceAccountName
	if strings.Contains(addr, csi.PlaceInternalIP) && !can(m, m.deployments[0].Namespace, rsa, "", "nodes", "get") {
		t.Errorf("router service account %s cannot get nodes (their InternalIP)", rsa)
	}
	if _, ok := flag(rt.Args, "nodes"); !ok && !can(m, m.deployments[0].Namespace, rsa, "storage.k8s.io", "csinodes", "list") {
		t.Errorf("router service account %s cannot list csinodes (its node list)", rsa)
	}
}

// checkSnapshotMetadata checks that the SnapshotMetadataService object
// names the driver and an address that is a Service reaching the
// controller's csi-snapshot-metadata sidecar, which has its TLS secret
// and the roles it needs.
func checkSnapshotMetadata(t *testing.T, m *manifests) {
	t.Helper()
	if len(m.metadataSvcs) != 1 {
		t.Fatalf("want one SnapshotMetadataService, got %d", len(m.metadataSvcs))
	}
	sms := m.metadataSvcs[0]
	if sms.Name != csi.DriverName || sms.Spec.Audience == "" || len(sms.Spec.CACert) == 0 {
		t.Errorf("SnapshotMetadataService %q: want the name %s, an audience and a CA certificate", sms.Name, csi.DriverName)
	}
	host, port, ok := strings.Cut(sms.Spec.Address, ":")
	svcName, svcNS, _ := strings.Cut(host, ".")
	dep := m.deployments[0]
	pod := dep.Spec.Template
	side := container(t, pod.Spec, "csi-snapshot-metadata")
	found := false
	for _, svc := range m.services {
		if svc.Name != svcName || svc.Namespace != svcNS {
			continue
		}
		found = true
		if svc.Namespace != dep.Namespace {
			t.Errorf("Service %s is not in the controller's namespace %s", svc.Name, dep.Namespace)
		}
		for k, v := range svc.Spec.Selector {
			if pod.Labels[k] != v {
				t.Errorf("Service %s selects %s=%s, which the controller's pods do not carry", svc.Name, k, v)
			}
		}
		reaches := false
		for _, p := range svc.Spec.Ports {
			if fmt.Sprint(p.Port) != port {
				continue
			}
			for _, cp := range side.Ports {
				if (p.TargetPort.StrVal != "" && p.TargetPort.StrVal == cp.Name) || (p.TargetPort.StrVal == "" && p.TargetPort.IntVal == cp.ContainerPort) {
					reaches = true
				}
			}
		}
		if !reaches {
			t.Errorf("Service %s port %s does not reach a port of csi-snapshot-metadata", svc.Name, port)
		}
	}
	if !ok || !found {
		t.Errorf("SnapshotMetadataService address %q is no SERVICE.NAMESPACE:PORT of the manifests", sms.Spec.Address)
	}
	for _, f := range []string{"tls-cert", "tls-key"} {
		path, _ := flag(side.Args, f)
		vol, _ := mountOf(side, path)
		secret := false
		for _, v := range pod.Spec.Volumes {
			secret = secret || (v.Name == vol && v.Secret != nil && v.Secret.SecretName != "")
		}
		if !secret {
			t.Errorf("csi-snapshot-metadata --%s=%q is not on a secret volume", f, path)
		}
	}
	need := map[string]string{"cbt.storage.k8s.io/snapshotmetadataservices": "get",
		"authentication.k8s.io/tokenreviews": "create", "authorization.k8s.io/subjectaccessreviews": "create"}
	bound := map[string]bool{}
	for _, b := range m.clusterBindings {
		for _, sub := range b.Subjects {
			if sub.Kind == "ServiceAccount" && sub.Name == pod.Spec.ServiceAccountName && sub.Namespace == dep.Namespace {
				bound[b.RoleRef.Name] = true
			}
		}
	}
	for _, r := range m.clusterRoles {
		if !bound[r.Name] {
			continue
		}
		for _, rule := range r.Rules {
			for _, g := range rule.APIGroups {
				for _, res := range rule.Resources {
					if v, ok := need[g+"/"+res]; ok && slices.Contains(rule.Verbs, v) {
						delete(need, g+"/"+res)
					}
				}
			}
		}
	}
	for res, verb := range need {
		t.Errorf("the controller's ClusterRole cannot %s %s (csi-snapshot-metadata needs it)", verb, res)
	}
}
